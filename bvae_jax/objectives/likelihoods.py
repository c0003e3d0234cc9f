"""Decoder likelihoods: reconstruction NLLs in nats and the decoder's mean image.

Reconstruction terms are negative log-likelihoods summed over pixels and
channels per image, as in Burgess et al. (2018), Higgins et al. (2017) and
disentanglement_lib's `bernoulli_loss` (losses.py), so the papers' β and γ mean
the same here.
"""

import jax
import jax.numpy as jnp
import numpy as np

LIKELIHOODS = ('bernoulli', 'gaussian')


def bernoulli_nll(logits: jax.Array, images: jax.Array) -> jax.Array:
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


def gaussian_nll(means: jax.Array, images: jax.Array, stddev) -> jax.Array:
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


def reconstruction_nll(decoder_output: jax.Array, images: jax.Array,
                       likelihood: str, gaussian_stddev) -> jax.Array:
  """Per-image nats under the configured decoder likelihood."""
  if likelihood == 'bernoulli':
    return bernoulli_nll(decoder_output, images)
  if likelihood == 'gaussian':
    return gaussian_nll(decoder_output, images, gaussian_stddev)
  raise ValueError(
      f'config.likelihood must be one of {LIKELIHOODS}, got {likelihood!r}')


def decoder_mean(decoder_output: jax.Array, likelihood: str) -> jax.Array:
  """The mean image of the decoder distribution, in [0, 1]."""
  if likelihood == 'bernoulli':
    return jax.nn.sigmoid(decoder_output)
  if likelihood == 'gaussian':
    return jnp.clip(decoder_output, 0.0, 1.0)
  raise ValueError(
      f'config.likelihood must be one of {LIKELIHOODS}, got {likelihood!r}')
