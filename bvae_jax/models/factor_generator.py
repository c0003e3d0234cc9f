"""Burgess et al. (2018) Fig. 3's model: ground-truth factors → noisy channels → decoder.

`FactorConditionedGenerator` is the VAE's decoder (models/vae.py), fed with
ground-truth factors through learned noisy channels (`NoisyFactorChannels`)
instead of a posterior sample.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bvae_jax.models import conv_layers
from bvae_jax.models import vae


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
    self.decoder = vae.Decoder(self.num_channels, conv_impl=self.conv_impl)

  def __call__(self, factor_inputs: jax.Array, noise_rng: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """(decoder output (N, 64, 64, C), per-factor KL (N, K)) of the factors."""
    z, kl = self.channels(factor_inputs, noise_rng)
    return self.decoder(z), kl
