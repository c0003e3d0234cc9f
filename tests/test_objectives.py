"""Objectives against closed-form values (references cited per test)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bvae_jax import objectives


def _config(**overrides):
  config = dict(objective='capacity', likelihood='bernoulli', gaussian_stddev=1.0,
                beta=4.0, gamma=1000.0, capacity_start=0.0, capacity_max=25.0,
                capacity_anneal_steps=100)
  config.update(overrides)
  return config


def test_bernoulli_nll_matches_cross_entropy_by_hand():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 4, 2)).astype(np.float32) * 3
  images = (rng.uniform(size=logits.shape) > 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = -np.sum(images * np.log(p) + (1 - images) * np.log(1 - p),
                     axis=(1, 2, 3))
  np.testing.assert_allclose(objectives.bernoulli_nll(logits, images), expected,
                             rtol=1e-5)


def test_bernoulli_nll_golden_value_at_zero_logits():
  # p = 1/2 everywhere: −log p(x) = log 2 per pixel, 64·64·log 2 per image.
  nll = objectives.bernoulli_nll(jnp.zeros((2, 64, 64, 1)), jnp.ones((2, 64, 64, 1)))
  np.testing.assert_allclose(nll, [4096 * np.log(2)] * 2, rtol=1e-6)


def test_bernoulli_nll_is_finite_for_extreme_logits():
  logits = jnp.array([[-200.0, 200.0]])
  nll = objectives.bernoulli_nll(logits, jnp.array([[0.0, 1.0]]))
  assert np.isfinite(nll).all() and float(nll[0]) < 1e-30


def test_gaussian_nll_matches_density_by_hand():
  rng = np.random.default_rng(1)
  means = rng.uniform(size=(2, 3, 3, 1))
  images = rng.uniform(size=(2, 3, 3, 1))
  sigma = 0.3
  density = np.exp(-0.5 * ((images - means) / sigma)**2) / (sigma * np.sqrt(2 * np.pi))
  expected = -np.sum(np.log(density), axis=(1, 2, 3))
  np.testing.assert_allclose(objectives.gaussian_nll(means, images, sigma), expected,
                             rtol=1e-5)


def test_kl_per_latent_matches_general_gaussian_kl():
  # KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) = log(σ2/σ1) + (σ1² + (μ1 − μ2)²)/(2σ2²) − ½,
  # the general formula, with μ2 = 0, σ2 = 1 (Kingma & Welling 2014, app. B).
  rng = np.random.default_rng(2)
  mean = rng.normal(size=(5, 10))
  log_var = rng.normal(size=(5, 10))
  sigma = np.exp(0.5 * log_var)
  expected = np.log(1 / sigma) + (sigma**2 + mean**2) / 2 - 0.5
  np.testing.assert_allclose(objectives.kl_per_latent(mean, log_var), expected,
                             rtol=1e-5, atol=1e-6)


def test_kl_golden_values():
  kl = objectives.kl_per_latent(jnp.array([[0.0, 1.0, 0.0]]),
                                jnp.array([[0.0, 0.0, np.log(4.0)]]))
  # Prior itself: 0; unit shift: ½; σ² = 4: ½(4 − log 4 − 1).
  np.testing.assert_allclose(kl, [[0.0, 0.5, 0.5 * (3 - np.log(4))]], rtol=1e-6)


@pytest.mark.parametrize('step, expected', [(0, 0.0), (25, 6.25), (50, 12.5),
                                            (100, 25.0), (10_000, 25.0)])
def test_capacity_schedule_is_linear_then_constant(step, expected):
  np.testing.assert_allclose(
      objectives.capacity_schedule(step, 0.0, 25.0, 100), expected, rtol=1e-6)


def test_capacity_schedule_with_nonzero_start():
  np.testing.assert_allclose(
      [objectives.capacity_schedule(s, 5.0, 15.0, 10) for s in (0, 5, 20)],
      [5.0, 10.0, 15.0], rtol=1e-6)


def test_capacity_loss_is_burgess_eq8_and_pulls_kl_toward_c():
  reconstruction, gamma = jnp.float32(100.0), 1000.0
  for kl, capacity, expected in [(3.0, 5.0, 2100.0), (7.0, 5.0, 2100.0),
                                 (5.0, 5.0, 100.0)]:
    np.testing.assert_allclose(
        objectives.capacity_loss(reconstruction, jnp.float32(kl), gamma,
                                 jnp.float32(capacity)), expected, rtol=1e-6)
  # Below C the gradient raises KL, above C it lowers it, with magnitude γ.
  grad = jax.grad(objectives.capacity_loss, argnums=1)
  assert float(grad(reconstruction, jnp.float32(3.0), gamma, 5.0)) == -gamma
  assert float(grad(reconstruction, jnp.float32(7.0), gamma, 5.0)) == gamma


def test_beta_one_is_the_negative_elbo():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=(4, 8, 8, 1)), jnp.float32)
  images = jnp.asarray(rng.uniform(size=(4, 8, 8, 1)) > 0.5, jnp.float32)
  mean = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  log_var = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  loss, metrics = objectives.vae_objective(
      logits, images, mean, log_var, 0, _config(objective='beta_vae', beta=1.0))
  negative_elbo = np.mean(objectives.bernoulli_nll(logits, images) +
                          objectives.kl_per_latent(mean, log_var).sum(-1))
  np.testing.assert_allclose(loss, negative_elbo, rtol=1e-5)
  np.testing.assert_allclose(metrics['kl_per_latent'].sum(), metrics['kl_total'],
                             rtol=1e-6)


def test_vae_objective_capacity_reports_c_and_gap():
  mean = jnp.ones((2, 4))
  log_var = jnp.zeros((2, 4))  # KL = ½ per latent, 2 nats in total.
  logits = jnp.zeros((2, 8, 8, 1))
  images = jnp.zeros((2, 8, 8, 1))
  loss, metrics = objectives.vae_objective(logits, images, mean, log_var, 50,
                                           _config(capacity_max=10.0))
  np.testing.assert_allclose(metrics['capacity'], 5.0)
  np.testing.assert_allclose(metrics['kl_capacity_gap'], 3.0, rtol=1e-6)
  np.testing.assert_allclose(loss, 64 * np.log(2) + 1000 * 3.0, rtol=1e-6)


def test_unknown_objective_and_likelihood_are_named():
  args = (jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2)),
          jnp.zeros((1, 2)), 0)
  with pytest.raises(ValueError, match='config.objective'):
    objectives.vae_objective(*args, _config(objective='factor_vae'))
  with pytest.raises(ValueError, match='config.likelihood'):
    objectives.vae_objective(*args, _config(likelihood='laplace'))
