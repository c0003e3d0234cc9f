"""Loss functions of the β-VAE family, as pure functions of arrays.

Everything here runs inside the jitted train step. Conventions:

* The posterior q(z|x) = N(mean, diag(exp(log_var))) is parameterised by its mean
  and its *log-variance* (the encoder's output layer).
* Reconstruction terms are negative log-likelihoods in nats, summed over pixels and
  channels and averaged over the batch, as in Burgess et al. (2018) and Higgins et
  al. (2017); this makes the γ and β values of the papers mean the same here.
* KL terms are in nats.

References:
  Higgins et al. 2017, "β-VAE: Learning basic visual concepts with a constrained
    variational framework", ICLR (Eq. 4).
  Burgess et al. 2018, "Understanding disentangling in β-VAE", arXiv:1804.03599
    (Eq. 5 is the β-VAE objective, Eq. 8 the controlled-capacity objective).
  Kingma & Welling 2014, "Auto-encoding variational Bayes", appendix B (the
    closed-form KL of a diagonal Gaussian from N(0, I)).
"""

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def bernoulli_nll(logits: Array, images: Array) -> Array:
  """−log p(x|z) of per-pixel Bernoulli distributions, summed per image.

  Args:
    logits: decoder output, logits of p(x_i = 1 | z), shape (N, H, W, C).
    images: targets in [0, 1], same shape. Non-binary targets give the
      cross-entropy, as is standard for dSprites-like data.

  Returns:
    Per-image negative log-likelihood in nats, shape (N,).
  """
  # log σ(l) = −softplus(−l) and log(1 − σ(l)) = −softplus(l): stable for any l.
  per_pixel = images * jax.nn.softplus(-logits) + (1.0 - images) * jax.nn.softplus(
      logits)
  return jnp.sum(per_pixel, axis=tuple(range(1, per_pixel.ndim)))


def gaussian_nll(means: Array, images: Array, stddev: float) -> Array:
  """−log p(x|z) of per-pixel Gaussians N(means, stddev²), summed per image.

  The full likelihood including its constant, so values are comparable across
  `stddev` settings and with the Bernoulli decoder's nats.

  Args:
    means: decoder output, shape (N, H, W, C).
    images: targets, same shape.
    stddev: the fixed observation noise standard deviation (> 0).

  Returns:
    Per-image negative log-likelihood in nats, shape (N,).
  """
  per_pixel = (0.5 * jnp.square((images - means) / stddev) + jnp.log(stddev) +
               0.5 * np.log(2.0 * np.pi))
  return jnp.sum(per_pixel, axis=tuple(range(1, per_pixel.ndim)))


def reconstruction_nll(decoder_output: Array, images: Array, likelihood: str,
                       gaussian_stddev: float) -> Array:
  """Dispatches to the configured decoder likelihood; returns per-image nats."""
  if likelihood == 'bernoulli':
    return bernoulli_nll(decoder_output, images)
  if likelihood == 'gaussian':
    return gaussian_nll(decoder_output, images, gaussian_stddev)
  raise ValueError(
      f"config.likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


def kl_per_latent(mean: Array, log_var: Array) -> Array:
  """KL(N(mean, exp(log_var)) ‖ N(0, 1)) for each latent dimension.

  Kingma & Welling 2014, appendix B: KL = ½ (μ² + σ² − log σ² − 1).

  Args:
    mean: posterior means, shape (N, L).
    log_var: posterior log-variances, shape (N, L).

  Returns:
    Per-example, per-latent KL in nats, shape (N, L).
  """
  return 0.5 * (jnp.square(mean) + jnp.exp(log_var) - log_var - 1.0)


def capacity_schedule(step: Array, capacity_start: float, capacity_max: float,
                      capacity_anneal_steps: int) -> Array:
  """The target KL C(step) of Burgess et al. (2018), Section 5.

  C rises linearly from `capacity_start` at step 0 to `capacity_max` at step
  `capacity_anneal_steps`, then stays at `capacity_max`.

  Args:
    step: the training step (scalar, int or float).
    capacity_start: C at step 0, in nats.
    capacity_max: C at and after `capacity_anneal_steps`, in nats.
    capacity_anneal_steps: length of the linear ramp (> 0).

  Returns:
    C(step) in nats as a float32 scalar.
  """
  fraction = jnp.clip(
      jnp.asarray(step, jnp.float32) /
      jnp.asarray(capacity_anneal_steps, jnp.float32), 0.0, 1.0)
  return capacity_start + (capacity_max - capacity_start) * fraction


def beta_vae_loss(reconstruction: Array, kl_total: Array,
                  beta: float) -> Array:
  """The β-VAE objective (Higgins et al. 2017 Eq. 4; Burgess Eq. 5), minimised.

  L = E[−log p(x|z)] + β · KL(q(z|x) ‖ p(z)); β = 1 is the plain VAE's negative
  ELBO.

  Args:
    reconstruction: batch-mean reconstruction NLL (scalar).
    kl_total: batch-mean KL summed over latents (scalar).
    beta: weight of the KL term (≥ 0).

  Returns:
    The scalar loss.
  """
  return reconstruction + beta * kl_total


def capacity_loss(reconstruction: Array, kl_total: Array, gamma: float,
                  capacity: Array) -> Array:
  """The controlled-capacity objective of Burgess et al. (2018), Eq. 8, minimised.

  L = E[−log p(x|z)] + γ · |KL(q(z|x) ‖ p(z)) − C|, with the batch-mean KL.

  Args:
    reconstruction: batch-mean reconstruction NLL (scalar).
    kl_total: batch-mean KL summed over latents (scalar).
    gamma: weight of the capacity term (≥ 0).
    capacity: the current target C in nats (scalar).

  Returns:
    The scalar loss.
  """
  return reconstruction + gamma * jnp.abs(kl_total - capacity)


def vae_objective(decoder_output: Array, images: Array, mean: Array,
                  log_var: Array, step: Array,
                  objective_config: Mapping[str, object]) -> tuple[Array, dict]:
  """The configured training loss and its parts, for one batch.

  Args:
    decoder_output: (N, H, W, C) decoder output (logits or Gaussian means).
    images: (N, H, W, C) targets in [0, 1].
    mean: (N, L) posterior means.
    log_var: (N, L) posterior log-variances.
    step: the training step, for the capacity schedule.
    objective_config: a mapping with the keys `objective` ('capacity' or
      'beta_vae'), `likelihood`, `gaussian_stddev`, `beta`, `gamma`,
      `capacity_start`, `capacity_max` and `capacity_anneal_steps` (the
      top-level training config works).

  Returns:
    (loss, metrics): the scalar loss and a dict of scalars and the per-latent
    KL vector, all batch means: `loss`, `reconstruction`, `kl_total`,
    `kl_per_latent`, `capacity` and `kl_capacity_gap` = |KL − C| (C is reported
    for the β-VAE objective too, so runs compare on one plot).
  """
  reconstruction = jnp.mean(
      reconstruction_nll(decoder_output, images, objective_config['likelihood'],
                         objective_config['gaussian_stddev']))
  kl_latents = jnp.mean(kl_per_latent(mean, log_var), axis=0)
  kl_total = jnp.sum(kl_latents)
  capacity = capacity_schedule(step, objective_config['capacity_start'],
                               objective_config['capacity_max'],
                               objective_config['capacity_anneal_steps'])
  objective = objective_config['objective']
  if objective == 'capacity':
    loss = capacity_loss(reconstruction, kl_total, objective_config['gamma'],
                         capacity)
  elif objective == 'beta_vae':
    loss = beta_vae_loss(reconstruction, kl_total, objective_config['beta'])
  else:
    raise ValueError("config.objective must be 'capacity' or 'beta_vae', got "
                     f'{objective!r}')
  metrics = {
      'loss': loss,
      'reconstruction': reconstruction,
      'kl_total': kl_total,
      'kl_per_latent': kl_latents,
      'capacity': capacity,
      'kl_capacity_gap': jnp.abs(kl_total - capacity),
  }
  return loss, metrics
