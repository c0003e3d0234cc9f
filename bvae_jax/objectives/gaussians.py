"""Diagonal-Gaussian formulas shared by the objectives and evaluation.

The posterior q(z|x) = N(mean, diag(exp(log_var))) is parameterised by its mean
and its *log-variance* (the encoder's output layer); all values are in nats.
"""

import jax
import jax.numpy as jnp
import numpy as np


def kl_per_latent(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, exp(log_var)) ‖ N(0, 1)) for each latent dimension.

  Kingma & Welling 2014, appendix B: KL = ½ (μ² + σ² − log σ² − 1).

  Args:
    mean: posterior means, shape (N, L).
    log_var: posterior log-variances, shape (N, L).

  Returns:
    Per-example, per-latent KL in nats, shape (N, L).
  """
  return 0.5 * (jnp.square(mean) + jnp.exp(log_var) - log_var - 1.0)


def log_density(samples: jax.Array, mean: jax.Array,
                log_var: jax.Array) -> jax.Array:
  """Elementwise log N(samples; mean, exp(log_var)), broadcasting.

  disentanglement_lib `methods/unsupervised/vae.py` `gaussian_log_density`.
  """
  return -0.5 * (jnp.square(samples - mean) * jnp.exp(-log_var) + log_var +
                 np.log(2.0 * np.pi))
