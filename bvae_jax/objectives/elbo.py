"""The terms of the evidence lower bound that every objective reports.

Both terms are batch means, as in Higgins et al. (2017), Burgess et al. (2018)
and disentanglement_lib (`reconstruction_loss` and `compute_gaussian_kl`).

Beside the KL we report how much of it depends on the input. Averaged over a
batch, each latent's KL ½ E_x[μ² + σ² − log σ² − 1] splits exactly into
½ Var_x[μ] (the posterior mean moving with the input) and
½ ((E_x μ)² + E_x[σ² − log σ² − 1]) (a shift or narrowing that every input
shares, and so carries no information about the input). The first part is
`kl_input_dependent_per_latent`; it lies in [0, KL]. An encoder whose means
are the same for every input meets any KL target with none of it input
dependent, so the capacity objective's |KL − C| ≈ 0 does not by itself show
that the model encodes anything (issue 25).
"""

from typing import Mapping

import jax
import jax.numpy as jnp

from bvae_jax.objectives import gaussians
from bvae_jax.objectives import likelihoods


def elbo_terms(outputs, images: jax.Array, hparams: Mapping[str, jax.Array],
               static: Mapping[str, str]) -> dict[str, jax.Array]:
  """The batch-mean reconstruction NLL and KL of the model's outputs.

  Args:
    outputs: `models.VAEOutput` of the batch.
    images: (N, H, W, C) targets in [0, 1].
    hparams: the step's hyperparameters (reads `gaussian_stddev`).
    static: the step's static fields (reads `likelihood`).

  Returns:
    {'reconstruction': E[−log p(x|z)] (scalar), 'kl_per_latent': (L,) the
    batch-mean KL of each latent, 'kl_total': their sum (scalar),
    'kl_input_dependent_per_latent': (L,) ½ Var over the batch of each
    latent's posterior mean (≤ that latent's KL), 'kl_input_dependent': their
    sum (scalar)}.
  """
  reconstruction = jnp.mean(likelihoods.reconstruction_nll(
      outputs.decoder_output, images, static['likelihood'],
      hparams['gaussian_stddev']))
  kl_latents = jnp.mean(gaussians.kl_per_latent(outputs.mean, outputs.log_var),
                        axis=0)
  input_dependent = input_dependent_kl_per_latent(outputs.mean)
  return {'reconstruction': reconstruction, 'kl_per_latent': kl_latents,
          'kl_total': jnp.sum(kl_latents),
          # Diagnostics only: gradients of the loss never flow through these.
          'kl_input_dependent_per_latent': jax.lax.stop_gradient(
              input_dependent),
          'kl_input_dependent': jax.lax.stop_gradient(
              jnp.sum(input_dependent))}


def input_dependent_kl_per_latent(mean: jax.Array) -> jax.Array:
  """½ Var over the batch of each latent's posterior mean, nats.

  The part of the batch-mean KL to N(0, 1) that moves with the input
  (module docstring); the rest is the same for every input.

  Args:
    mean: (N, L) posterior means.

  Returns:
    (L,) ½ Var_x[μ_l] (population variance over the N inputs).
  """
  return 0.5 * jnp.var(mean, axis=0)
