"""β-TCVAE (Chen et al. 2018): the ELBO plus (β − 1) · total correlation.

L = E[−log p(x|z)] + KL(q(z|x) ‖ p(z)) + (β − 1) · TC(z), minimised, with TC
estimated on the minibatch exactly as disentanglement_lib's `BetaTCVAE`
(methods/unsupervised/vae.py, `total_correlation` and `BetaTCVAE.regularizer`):
the sampled z of each image is scored under every image's posterior, with no
log(batch · dataset size) normalisation. That constant does not change the
gradients, so the estimate here is often negative, as it is there.
"""

import jax
import jax.numpy as jnp

from bvae_jax import objectives
from bvae_jax.objectives import elbo
from bvae_jax.objectives import gaussians

HYPERPARAMETERS = ('beta',)
STATIC_FIELDS = ()
CONFIG_DEFAULTS = {}


def validate(config) -> None:
  objectives.require_nonnegative(config, 'beta')


def total_correlation(z: jax.Array, mean: jax.Array,
                      log_var: jax.Array) -> jax.Array:
  """The minibatch estimate of TC(z) = KL(q(z) ‖ ∏_l q(z_l)).

  Args:
    z: (B, L) posterior samples, one per image.
    mean: (B, L) posterior means.
    log_var: (B, L) posterior log-variances.

  Returns:
    mean_j [ log Σ_i q(z_j | x_i) − Σ_l log Σ_i q(z_jl | x_i) ], a scalar.
  """
  # [j, i, l]: log q(z_jl | x_i).
  log_qz_prob = gaussians.log_density(z[:, None, :], mean[None, :, :],
                                      log_var[None, :, :])
  log_qz_product = jnp.sum(jax.nn.logsumexp(log_qz_prob, axis=1), axis=1)
  log_qz = jax.nn.logsumexp(jnp.sum(log_qz_prob, axis=2), axis=1)
  return jnp.mean(log_qz - log_qz_product)


def loss(outputs, images, step, hparams, static):
  """See the package docstring; terms add `total_correlation`."""
  del step
  terms = elbo.elbo_terms(outputs, images, hparams, static)
  tc = total_correlation(outputs.z, outputs.mean, outputs.log_var)
  total = (terms['reconstruction'] + terms['kl_total'] +
           (hparams['beta'] - 1.0) * tc)
  return total, {'loss': total, **terms, 'total_correlation': tc}
