"""Controlled capacity (Burgess et al. 2018, Eq. 8 and Section 5).

L = E[−log p(x|z)] + γ · |KL(q(z|x) ‖ p(z)) − C|, minimised, with the
batch-mean KL and a target C that rises linearly from `capacity_start` to
`capacity_max` over `capacity_anneal_steps` steps. disentanglement_lib calls it
`AnnealedVAE` (methods/unsupervised/vae.py: `anneal` and its regularizer).
"""

import jax
import jax.numpy as jnp

from bvae_jax import objectives
from bvae_jax.objectives import elbo

HYPERPARAMETERS = ('gamma', 'capacity_start', 'capacity_max',
                   'capacity_anneal_steps')
STATIC_FIELDS = ()
CONFIG_DEFAULTS = {}


def validate(config) -> None:
  objectives.require_nonnegative(config, 'gamma', 'capacity_start',
                                 'capacity_max')
  if config.capacity_anneal_steps <= 0:
    raise ValueError('config.capacity_anneal_steps must be > 0, got '
                     f'{config.capacity_anneal_steps!r}')


def capacity_schedule(step, capacity_start, capacity_max,
                      capacity_anneal_steps) -> jax.Array:
  """The target KL C(step): linear from `capacity_start` to `capacity_max`.

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


def loss(outputs, images, step, hparams, static):
  """See the package docstring; terms add `capacity` (C) and |KL − C|."""
  terms = elbo.elbo_terms(outputs, images, hparams, static)
  capacity = capacity_schedule(step, hparams['capacity_start'],
                               hparams['capacity_max'],
                               hparams['capacity_anneal_steps'])
  gap = jnp.abs(terms['kl_total'] - capacity)
  total = terms['reconstruction'] + hparams['gamma'] * gap
  return total, {'loss': total, **terms, 'capacity': capacity,
                 'kl_capacity_gap': gap}
