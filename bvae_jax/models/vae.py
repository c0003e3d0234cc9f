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
layers come from `bvae_jax.models.conv_layers`, whose `conv_impl` choice changes only
how they are computed, never the parameter tree.

The same decoder is the Fig. 3 generator's (models/factor_generator.py).
"""

from flax import struct
import flax.linen as nn
import jax
import jax.numpy as jnp

from bvae_jax.models import conv_layers

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
