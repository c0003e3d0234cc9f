"""Encoder, decoder and VAE of Burgess et al. (2018), appendix A.1.

"Understanding disentangling in β-VAE" uses one architecture for 64×64 images:

  Encoder: 4 × [conv 32 channels, 4×4, stride 2, ReLU]  (64→32→16→8→4)
           flatten (4·4·32 = 512) → FC 256, ReLU → FC 256, ReLU
           → FC 2·latent_dim: the diagonal Gaussian posterior as
             (mean, log-variance).
  Decoder: FC 256, ReLU → FC 256, ReLU → FC 512, ReLU → reshape (4, 4, 32)
           → 3 × [transposed conv 32 channels, 4×4, stride 2, ReLU]
           → transposed conv num_channels, 4×4, stride 2  (4→8→16→32→64).

The decoder returns an unconstrained (N, 64, 64, C) map: per-pixel Bernoulli
logits, or the mean of a Gaussian; the loss decides which. The 4×4 stride-2
layers come from `bvae_jax.conv_layers`, whose `conv_impl` choice changes only
how they are computed, never the parameter tree.

`FactorConditionedGenerator` is the paper's Fig. 3 model: the same decoder,
fed with ground-truth factors through learned noisy channels
(`NoisyFactorChannels`) instead of a posterior sample.
"""

from flax import struct
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bvae_jax import conv_layers

IMAGE_SIZE = 64  # The architecture is defined for 64×64 inputs only.
CONV_CHANNELS = 32
HIDDEN_UNITS = 256
# Spatial size after the encoder's four halvings, where the decoder starts.
BOTTLENECK_SIZE = IMAGE_SIZE // 2**4


class Encoder(nn.Module):
  """Maps images to the parameters of a diagonal Gaussian posterior q(z|x).

  Attributes:
    latent_dim: number of latent dimensions L.
    conv_impl: formulation of the strided convolutions, one of
      `conv_layers.CONV_IMPLS`.
  """
  latent_dim: int
  conv_impl: str = conv_layers.DEFAULT_CONV_IMPL

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Encodes a batch of images.

    Args:
      images: (N, 64, 64, C) float array with values in [0, 1].

    Returns:
      (mean, log_var), each (N, latent_dim): the posterior mean and the
      natural logarithm of the posterior *variance* (not the standard
      deviation).
    """
    if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
      raise ValueError(
          f'Encoder expects (N, {IMAGE_SIZE}, {IMAGE_SIZE}, C) images, got '
          f'{images.shape}.')
    hidden = images
    for _ in range(4):
      hidden = conv_layers.StridedConv(CONV_CHANNELS, impl=self.conv_impl)(hidden)
      hidden = nn.relu(hidden)
    hidden = hidden.reshape(hidden.shape[0], -1)
    for _ in range(2):
      hidden = nn.relu(nn.Dense(HIDDEN_UNITS)(hidden))
    posterior = nn.Dense(2 * self.latent_dim)(hidden)
    mean, log_var = jnp.split(posterior, 2, axis=-1)
    return mean, log_var


class Decoder(nn.Module):
  """Maps latent codes to an unconstrained (N, 64, 64, C) image map.

  Attributes:
    num_channels: image channels C (1 for dSprites, 3 for colour data).
    conv_impl: formulation of the strided transposed convolutions, one of
      `conv_layers.CONV_IMPLS`.
  """
  num_channels: int
  conv_impl: str = conv_layers.DEFAULT_CONV_IMPL

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Decodes latent codes.

    Args:
      z: (N, latent_dim) latent codes.

    Returns:
      (N, 64, 64, num_channels) per-pixel logits (or Gaussian means): no
      output non-linearity is applied.
    """
    hidden = z
    for _ in range(2):
      hidden = nn.relu(nn.Dense(HIDDEN_UNITS)(hidden))
    bottleneck_units = BOTTLENECK_SIZE * BOTTLENECK_SIZE * CONV_CHANNELS
    hidden = nn.relu(nn.Dense(bottleneck_units)(hidden))
    hidden = hidden.reshape(
        hidden.shape[0], BOTTLENECK_SIZE, BOTTLENECK_SIZE, CONV_CHANNELS)
    for _ in range(3):
      hidden = conv_layers.StridedConvTranspose(
          CONV_CHANNELS, impl=self.conv_impl)(hidden)
      hidden = nn.relu(hidden)
    return conv_layers.StridedConvTranspose(
        self.num_channels, impl=self.conv_impl)(hidden)


@struct.dataclass
class VAEOutput:
  """What the VAE computes for a batch, for the objectives.

  Attributes:
    decoder_output: (N, 64, 64, C) decoder output (see `Decoder`).
    mean: (N, L) posterior means.
    log_var: (N, L) posterior log-variances.
    z: (N, L) the reparameterised posterior sample that was decoded.
  """
  decoder_output: jax.Array
  mean: jax.Array
  log_var: jax.Array
  z: jax.Array


class VAE(nn.Module):
  """Encoder + reparameterised Gaussian sample + decoder.

  Attributes:
    latent_dim: number of latent dimensions L.
    num_channels: image channels C.
    conv_impl: formulation of the strided (transposed) convolutions, one of
      `conv_layers.CONV_IMPLS`; it does not change the parameter tree.
  """
  latent_dim: int
  num_channels: int
  conv_impl: str = conv_layers.DEFAULT_CONV_IMPL

  def setup(self):
    self.encoder = Encoder(self.latent_dim, conv_impl=self.conv_impl)
    self.decoder = Decoder(self.num_channels, conv_impl=self.conv_impl)

  def __call__(self, images: jax.Array, noise_rng: jax.Array) -> VAEOutput:
    """Encodes, samples z ~ q(z|x) with the reparameterisation trick, decodes.

    Args:
      images: (N, 64, 64, C) float array with values in [0, 1].
      noise_rng: PRNG key for the posterior sample's standard-normal noise.

    Returns:
      The decoder output for z, the posterior (mean, log_var: the log of the
      variance) and z itself.
    """
    mean, log_var = self.encoder(images)
    noise = jax.random.normal(noise_rng, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * log_var) * noise
    return VAEOutput(decoder_output=self.decoder(z), mean=mean,
                     log_var=log_var, z=z)

  def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns the posterior (mean, log_var) of each image; see `Encoder`."""
    return self.encoder(images)

  def decode(self, z: jax.Array) -> jax.Array:
    """Returns the decoder output (logits) for latent codes z; see `Decoder`."""
    return self.decoder(z)


class FactorDiscriminator(nn.Module):
  """FactorVAE's discriminator: is a code z a posterior sample or permuted?

  disentanglement_lib's `fc_discriminator` (methods/shared/architectures.py),
  used by its `FactorVAE` (Kim & Mnih 2018): 6 dense layers of 1000 units with
  leaky ReLU of slope 0.2 (TensorFlow's `tf.nn.leaky_relu` default; JAX's is
  0.01), then 2 logits. Kernels are Glorot-uniform and biases zero, as
  `tf.layers.dense` initialises them.

  Attributes:
    hidden_layers: number of hidden dense layers.
    hidden_units: units per hidden layer.
  """
  hidden_layers: int = 6
  hidden_units: int = 1000

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Returns (N, 2) logits: [posterior sample, dimension-permuted sample].

    Args:
      z: (N, L) latent codes.
    """
    dense = lambda units: nn.Dense(units,
                                   kernel_init=nn.initializers.glorot_uniform())
    hidden = z
    for _ in range(self.hidden_layers):
      hidden = nn.leaky_relu(dense(self.hidden_units)(hidden),
                             negative_slope=0.2)
    return dense(2)(hidden)


# The factor channels start nearly closed (KL ≈ 0.005 nats a dimension) but not
# at zero: at a = 0, σ = 1 the KL has zero gradient in both parameters.
INITIAL_SIGNAL_SCALE = 0.1


class NoisyFactorChannels(nn.Module):
  """Ground-truth factors through learnably scaled, noisy Gaussian channels.

  Burgess et al. (2018), Section 4.2 and Fig. 3: factor k, given as a group
  of `group_sizes[k]` standardised input dimensions f, becomes
  z = a_k · f + σ_k · ε with a learned scale a_k, a learned noise standard
  deviation σ_k (as log σ_k²) and ε ~ N(0, I). KL(N(a_k f, σ_k²) ‖ N(0, 1)),
  summed over the group's dimensions, is the capacity spent on the factor.
  Averaged over the data it is the mutual information I(f; z) plus the KL of
  the code's marginal from N(0, 1), so it bounds the nats the decoder
  receives about the factor; for unit-variance Gaussian inputs the bound is
  reached when a_k² + σ_k² = 1, where it is −½ log σ_k² (the Gaussian
  channel's capacity, Cover & Thomas, Elements of Information Theory, 9.1).

  Attributes:
    group_sizes: input dimensions per factor, in input order.
  """
  group_sizes: tuple[int, ...]

  @nn.compact
  def __call__(self, factor_inputs: jax.Array, noise_rng: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """Scales and perturbs the factors.

    Args:
      factor_inputs: (N, sum(group_sizes)) standardised factor values.
      noise_rng: PRNG key of the channel noise ε.

    Returns:
      (z, kl): z (N, sum(group_sizes)) the noisy code; kl (N, K) each
      factor's KL in nats.

    Raises:
      ValueError: if the inputs' width is not sum(group_sizes).
    """
    width = sum(self.group_sizes)
    if factor_inputs.shape[-1] != width:
      raise ValueError(
          f'factor_inputs has {factor_inputs.shape[-1]} columns; the groups '
          f'{self.group_sizes} need {width}.')
    num_factors = len(self.group_sizes)
    signal_scale = self.param(
        'signal_scale', nn.initializers.constant(INITIAL_SIGNAL_SCALE),
        (num_factors,))
    noise_log_var = self.param('noise_log_var', nn.initializers.zeros,
                               (num_factors,))
    # (D, K): which factor each input dimension belongs to.
    membership = jnp.asarray(np.repeat(
        np.eye(num_factors, dtype=np.float32), self.group_sizes, axis=0))
    mean = factor_inputs * (membership @ signal_scale)
    log_var = jnp.broadcast_to(membership @ noise_log_var, mean.shape)
    noise = jax.random.normal(noise_rng, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * log_var) * noise
    # KL(N(m, s²) ‖ N(0, 1)) = ½ (m² + s² − log s² − 1) per dimension, as
    # objectives.gaussians.kl_per_latent (not imported: the objectives build
    # on this module, not it on them).
    kl = 0.5 * (jnp.square(mean) + jnp.exp(log_var) - log_var - 1.0)
    return z, kl @ membership


class FactorConditionedGenerator(nn.Module):
  """Burgess et al. (2018) Fig. 3's generator: noisy factors → decoder.

  The decoder is the VAE's (appendix A.1); its input is the noisy code of
  `NoisyFactorChannels` instead of a posterior sample.

  Attributes:
    group_sizes: input dimensions per factor (see `NoisyFactorChannels`).
    num_channels: image channels C.
    conv_impl: formulation of the strided transposed convolutions.
  """
  group_sizes: tuple[int, ...]
  num_channels: int
  conv_impl: str = conv_layers.DEFAULT_CONV_IMPL

  def setup(self):
    self.channels = NoisyFactorChannels(self.group_sizes)
    self.decoder = Decoder(self.num_channels, conv_impl=self.conv_impl)

  def __call__(self, factor_inputs: jax.Array, noise_rng: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """(decoder output (N, 64, 64, C), per-factor KL (N, K)) of the factors."""
    z, kl = self.channels(factor_inputs, noise_rng)
    return self.decoder(z), kl
