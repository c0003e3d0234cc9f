"""The terms of the evidence lower bound that every objective reports.

Both terms are batch means, as in Higgins et al. (2017), Burgess et al. (2018)
and disentanglement_lib (`reconstruction_loss` and `compute_gaussian_kl`).

Beside the KL we report how much of it depends on the input, in two ways,
each an exact split of a latent's batch-mean KL, E_x KL(q(z_l|x) ‖ N(0, 1)):

* `information_per_latent`, ½ [log(Var_x μ + E_x σ²) − E_x log σ²]: the KL
  minus KL(N(E_x μ, Var_x μ + E_x σ²) ‖ N(0, 1)), the KL of the moment-matched
  aggregate posterior. Since E_x KL(q(z|x) ‖ p) = I(x; z) + KL(q(z) ‖ p) and a
  Gaussian has the largest entropy for its variance, it is an upper bound on
  the mutual information I(x; z_l) of the batch's inputs and the latent, and
  it is 0 exactly when every input gets the same posterior. A healthy latent
  (means spread over ~N(0, 1), σ ≪ 1) has nearly all its KL here.
* `kl_input_dependent_per_latent`, ½ Var_x[μ]: the KL minus
  ½ ((E_x μ)² + E_x[σ² − log σ² − 1]), the part due to the means moving with
  the input. It is small beside the KL even for informative latents (their
  −log σ² term dominates), so it is a spread diagnostic, not an information
  measure.

An encoder whose posterior is the same for every input meets any KL target
with both at 0, so the capacity objective's |KL − C| ≈ 0 does not by itself
show that the model encodes anything (issue 25);
capacity_diagnostics.CollapseMonitor warns on `information`.
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
    sum (scalar), 'information_per_latent': (L,) the Gaussian upper bound on
    I(x; z_l) (≤ that latent's KL; module docstring), 'information': their
    sum (scalar)}.
  """
  reconstruction = jnp.mean(likelihoods.reconstruction_nll(
      outputs.decoder_output, images, static['likelihood'],
      hparams['gaussian_stddev']))
  kl_latents = jnp.mean(gaussians.kl_per_latent(outputs.mean, outputs.log_var),
                        axis=0)
  input_dependent = input_dependent_kl_per_latent(outputs.mean)
  information = information_bound_per_latent(outputs.mean, outputs.log_var)
  return {'reconstruction': reconstruction, 'kl_per_latent': kl_latents,
          'kl_total': jnp.sum(kl_latents),
          # Diagnostics only: gradients of the loss never flow through these.
          'kl_input_dependent_per_latent': jax.lax.stop_gradient(
              input_dependent),
          'kl_input_dependent': jax.lax.stop_gradient(
              jnp.sum(input_dependent)),
          'information_per_latent': jax.lax.stop_gradient(information),
          'information': jax.lax.stop_gradient(jnp.sum(information))}


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


def information_bound_per_latent(mean: jax.Array,
                                 log_var: jax.Array) -> jax.Array:
  """½ [log(Var_x μ + E_x σ²) − E_x log σ²] of each latent, nats.

  The Gaussian upper bound on I(x; z_l) over the N inputs, and the part of
  their mean KL that the moment-matched aggregate posterior does not account
  for (module docstring). 0 when every input gets the same posterior.

  Args:
    mean: (N, L) posterior means.
    log_var: (N, L) posterior log-variances.

  Returns:
    (L,) nats, ≥ 0.
  """
  aggregate_variance = jnp.var(mean, axis=0) + jnp.mean(jnp.exp(log_var),
                                                        axis=0)
  return 0.5 * (jnp.log(aggregate_variance) - jnp.mean(log_var, axis=0))
