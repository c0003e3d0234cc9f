"""The terms of the evidence lower bound that every objective reports.

Both terms are batch means, as in Higgins et al. (2017), Burgess et al. (2018)
and disentanglement_lib (`reconstruction_loss` and `compute_gaussian_kl`).
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
    batch-mean KL of each latent, 'kl_total': their sum (scalar)}.
  """
  reconstruction = jnp.mean(likelihoods.reconstruction_nll(
      outputs.decoder_output, images, static['likelihood'],
      hparams['gaussian_stddev']))
  kl_latents = jnp.mean(gaussians.kl_per_latent(outputs.mean, outputs.log_var),
                        axis=0)
  return {'reconstruction': reconstruction, 'kl_per_latent': kl_latents,
          'kl_total': jnp.sum(kl_latents)}
