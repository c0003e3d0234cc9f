"""DIP-VAE-I and -II (Kumar et al. 2018): the ELBO plus a covariance penalty.

L = E[−log p(x|z)] + KL + λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)²,
minimised, with λ_d = `dip_lambda_d_factor` · `dip_lambda_od`. Type 'i'
penalises the covariance of the posterior means over the batch; type 'ii'
that of the aggregate posterior, the means' covariance plus the batch mean of
diag(exp(log_var)). As disentanglement_lib's `DIPVAE`
(methods/unsupervised/vae.py: `compute_covariance_z_mean`,
`regularize_diag_off_diag_dip`): the biased (1/B) covariance, off-diagonal
entries of both triangles.
"""

import jax
import jax.numpy as jnp

from bvae_jax import objectives
from bvae_jax.objectives import elbo

HYPERPARAMETERS = ('dip_lambda_od', 'dip_lambda_d_factor')
STATIC_FIELDS = ('dip_type',)
DIP_TYPES = ('i', 'ii')
# disentanglement_lib's DIP-VAE-I study setting (λ_d = 10 λ_od); configs/dip_vae.py.
CONFIG_DEFAULTS = {'dip_type': 'i', 'dip_lambda_od': 10.0,
                   'dip_lambda_d_factor': 10.0}


def validate(config) -> None:
  objectives.require_nonnegative(config, 'dip_lambda_od', 'dip_lambda_d_factor')
  if config.dip_type not in DIP_TYPES:
    raise ValueError(f'config.dip_type must be one of {DIP_TYPES}, got '
                     f'{config.dip_type!r}')


def covariance_of_means(mean: jax.Array) -> jax.Array:
  """(L, L) biased covariance over the batch of the posterior means (B, L)."""
  expected_outer = jnp.mean(mean[:, :, None] * mean[:, None, :], axis=0)
  expected = jnp.mean(mean, axis=0)
  return expected_outer - expected[:, None] * expected[None, :]


def diag_off_diag_penalty(covariance: jax.Array, lambda_od,
                          lambda_d) -> jax.Array:
  """λ_od · Σ off-diagonal² + λ_d · Σ (diagonal − 1)²."""
  diagonal = jnp.diagonal(covariance)
  off_diagonal = covariance - jnp.diag(diagonal)
  return (lambda_od * jnp.sum(jnp.square(off_diagonal)) +
          lambda_d * jnp.sum(jnp.square(diagonal - 1.0)))


def dip_covariance(mean: jax.Array, log_var: jax.Array,
                   dip_type: str) -> jax.Array:
  """The covariance that DIP-VAE-`dip_type` pushes towards the identity."""
  covariance = covariance_of_means(mean)
  if dip_type == 'i':
    return covariance
  if dip_type == 'ii':
    return covariance + jnp.diag(jnp.mean(jnp.exp(log_var), axis=0))
  raise ValueError(f'config.dip_type must be one of {DIP_TYPES}, got '
                   f'{dip_type!r}')


def loss(outputs, images, step, hparams, static):
  """See the package docstring; terms add `dip_penalty`."""
  del step
  terms = elbo.elbo_terms(outputs, images, hparams, static)
  lambda_od = hparams['dip_lambda_od']
  penalty = diag_off_diag_penalty(
      dip_covariance(outputs.mean, outputs.log_var, static['dip_type']),
      lambda_od, hparams['dip_lambda_d_factor'] * lambda_od)
  total = terms['reconstruction'] + terms['kl_total'] + penalty
  return total, {'loss': total, **terms, 'dip_penalty': penalty}
