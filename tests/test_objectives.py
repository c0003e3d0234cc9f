"""Likelihoods, KL, and the β-VAE and capacity objectives against closed forms.

References are cited per test; β-TCVAE and DIP-VAE are in
test_objectives_disentanglement_lib.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bvae_jax.models import vae
from bvae_jax import objectives
from bvae_jax.objectives import beta_vae
from bvae_jax.objectives import capacity
from bvae_jax.objectives import elbo
from bvae_jax.objectives import gaussians
from bvae_jax.objectives import likelihoods

_HPARAMS = dict(gaussian_stddev=1.0, learning_rate=5e-4, beta=4.0,
                gamma=1000.0, capacity_start=0.0, capacity_max=25.0,
                capacity_anneal_steps=100.0)
_STATIC = {'likelihood': 'bernoulli'}


def _outputs(logits, mean, log_var):
  return vae.VAEOutput(decoder_output=logits, mean=mean, log_var=log_var,
                          z=mean)


def test_bernoulli_nll_matches_cross_entropy_by_hand():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 4, 4, 2)).astype(np.float32) * 3
  images = (rng.uniform(size=logits.shape) > 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = -np.sum(images * np.log(p) + (1 - images) * np.log(1 - p),
                     axis=(1, 2, 3))
  np.testing.assert_allclose(likelihoods.bernoulli_nll(logits, images), expected,
                             rtol=1e-5)


def test_bernoulli_nll_golden_value_at_zero_logits():
  # p = 1/2 everywhere: −log p(x) = log 2 per pixel, 64·64·log 2 per image.
  nll = likelihoods.bernoulli_nll(jnp.zeros((2, 64, 64, 1)), jnp.ones((2, 64, 64, 1)))
  np.testing.assert_allclose(nll, [4096 * np.log(2)] * 2, rtol=1e-6)


def test_bernoulli_nll_is_finite_for_extreme_logits():
  logits = jnp.array([[-200.0, 200.0]])
  nll = likelihoods.bernoulli_nll(logits, jnp.array([[0.0, 1.0]]))
  assert np.isfinite(nll).all() and float(nll[0]) < 1e-30


def test_gaussian_nll_matches_density_by_hand():
  rng = np.random.default_rng(1)
  means = rng.uniform(size=(2, 3, 3, 1))
  images = rng.uniform(size=(2, 3, 3, 1))
  sigma = 0.3
  density = np.exp(-0.5 * ((images - means) / sigma)**2) / (sigma * np.sqrt(2 * np.pi))
  expected = -np.sum(np.log(density), axis=(1, 2, 3))
  np.testing.assert_allclose(likelihoods.gaussian_nll(means, images, sigma), expected,
                             rtol=1e-5)


def test_kl_per_latent_matches_general_gaussian_kl():
  # KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) = log(σ2/σ1) + (σ1² + (μ1 − μ2)²)/(2σ2²) − ½,
  # the general formula, with μ2 = 0, σ2 = 1 (Kingma & Welling 2014, app. B).
  rng = np.random.default_rng(2)
  mean = rng.normal(size=(5, 10))
  log_var = rng.normal(size=(5, 10))
  sigma = np.exp(0.5 * log_var)
  expected = np.log(1 / sigma) + (sigma**2 + mean**2) / 2 - 0.5
  np.testing.assert_allclose(gaussians.kl_per_latent(mean, log_var), expected,
                             rtol=1e-5, atol=1e-6)


def test_kl_golden_values():
  kl = gaussians.kl_per_latent(jnp.array([[0.0, 1.0, 0.0]]),
                                jnp.array([[0.0, 0.0, np.log(4.0)]]))
  # Prior itself: 0; unit shift: ½; σ² = 4: ½(4 − log 4 − 1).
  np.testing.assert_allclose(kl, [[0.0, 0.5, 0.5 * (3 - np.log(4))]], rtol=1e-6)


def test_input_dependent_kl_is_half_the_variance_of_the_means_and_splits_kl():
  # E_x KL = ½ Var_x[μ] + ½ ((E_x μ)² + E_x[σ² − log σ² − 1]), exactly
  # (E[μ²] = (Eμ)² + Var μ); the second part is the same for every input.
  rng = np.random.default_rng(3)
  mean = rng.normal(size=(16, 4)) * [0.0, 0.1, 1.0, 3.0] + [2.0, 0, 0, 0]
  log_var = rng.normal(size=(16, 4))
  terms = elbo.elbo_terms(_outputs(jnp.zeros((16, 2, 2, 1)), mean, log_var),
                          jnp.zeros((16, 2, 2, 1)), _HPARAMS, _STATIC)
  input_part = 0.5 * np.var(mean, axis=0)
  np.testing.assert_allclose(terms['kl_input_dependent_per_latent'],
                             input_part, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(terms['kl_input_dependent'], input_part.sum(),
                             rtol=1e-5)
  shared_part = 0.5 * (mean.mean(0)**2 +
                       np.mean(np.exp(log_var) - log_var - 1, axis=0))
  np.testing.assert_allclose(terms['kl_per_latent'], input_part + shared_part,
                             rtol=1e-5)
  # Latent 0's mean is 2 for every input: 2 nats of KL, none input-dependent.
  assert float(terms['kl_per_latent'][0]) > 2.0
  assert float(terms['kl_input_dependent_per_latent'][0]) == 0.0


def test_information_bound_splits_the_kl_and_is_zero_for_a_shared_posterior():
  # E_x KL = ½ [log(Var μ + E σ²) − E log σ²] + KL(N(E μ, Var μ + E σ²) ‖ N(0, 1)).
  rng = np.random.default_rng(4)
  mean = rng.normal(size=(32, 3)) * [0.0, 0.5, 2.0] + 1.0
  log_var = rng.normal(size=(32, 3)) * [0.0, 1.0, 1.0] - 2.0
  terms = elbo.elbo_terms(_outputs(jnp.zeros((32, 1)), mean, log_var),
                          jnp.zeros((32, 1)), _HPARAMS, _STATIC)
  aggregate_var = mean.var(0) + np.exp(log_var).mean(0)
  information = 0.5 * (np.log(aggregate_var) - log_var.mean(0))
  np.testing.assert_allclose(terms['information_per_latent'], information,
                             rtol=1e-5, atol=1e-6)
  aggregate_kl = 0.5 * (mean.mean(0)**2 + aggregate_var -
                        np.log(aggregate_var) - 1)
  np.testing.assert_allclose(terms['kl_per_latent'],
                             information + aggregate_kl, rtol=1e-5)
  # Latent 0: N(1, e^-2) for every input: KL > 1 nat, no information.
  assert float(terms['kl_per_latent'][0]) > 1.0
  assert abs(float(terms['information_per_latent'][0])) < 1e-6


def test_information_bound_is_shannons_capacity_for_gaussian_means():
  # z = μ + σε with μ ~ N(0, V): I(μ; z) = ½ log(1 + V/σ²) (Shannon 1948),
  # which the Gaussian bound meets; the sample has Var μ ≈ V.
  rng = np.random.default_rng(5)
  variance, sigma = 4.0, 0.5
  mean = rng.normal(size=(200_000, 1)) * np.sqrt(variance)
  log_var = np.full_like(mean, 2 * np.log(sigma))
  bound = elbo.information_bound_per_latent(mean, log_var)
  np.testing.assert_allclose(bound, [0.5 * np.log(1 + variance / sigma**2)],
                             rtol=2e-3)


def test_information_bound_is_above_the_exact_information_of_binary_means():
  # μ = ±1 with equal weight, σ = 1: I(μ; z) = h(z) − h(z|μ) by quadrature,
  # the binary-input AWGN channel at SNR 1 (0 dB): ≈ 0.486 bits = 0.337 nats
  # in the channel-coding tables. It is below the Gaussian bound ½ log 2.
  z = np.linspace(-12, 12, 200_001)
  density = 0.5 * (np.exp(-0.5 * (z - 1)**2) + np.exp(-0.5 * (z + 1)**2)) / (
      np.sqrt(2 * np.pi))
  entropy = -np.trapezoid(density * np.log(density), z)
  exact = entropy - 0.5 * np.log(2 * np.pi * np.e)
  bound = float(elbo.information_bound_per_latent(
      np.array([[1.0], [-1.0]]), np.zeros((2, 1)))[0])
  assert bound == pytest.approx(0.5 * np.log(2.0), rel=1e-6)
  assert exact == pytest.approx(0.486 * np.log(2), abs=1e-3)
  assert exact < bound  # 0.337 < 0.693 nats.


def test_input_dependent_kl_carries_no_gradient():
  mean = jnp.arange(8.0).reshape(4, 2)

  def input_part(m):
    return elbo.elbo_terms(_outputs(jnp.zeros((4, 1)), m, jnp.zeros((4, 2))),
                           jnp.zeros((4, 1)), _HPARAMS,
                           _STATIC)['kl_input_dependent']

  assert float(input_part(mean)) > 0
  np.testing.assert_array_equal(jax.grad(input_part)(mean), 0.0)


@pytest.mark.parametrize('step, expected', [(0, 0.0), (25, 6.25), (50, 12.5),
                                            (100, 25.0), (10_000, 25.0)])
def test_capacity_schedule_is_linear_then_constant(step, expected):
  np.testing.assert_allclose(
      capacity.capacity_schedule(step, 0.0, 25.0, 100), expected, rtol=1e-6)


def test_capacity_schedule_with_nonzero_start():
  np.testing.assert_allclose(
      [capacity.capacity_schedule(s, 5.0, 15.0, 10) for s in (0, 5, 20)],
      [5.0, 10.0, 15.0], rtol=1e-6)


def test_capacity_loss_is_burgess_eq8_and_pulls_kl_toward_c():
  # KL = 2 nats (two images, four latents of mean 1 and unit variance); a
  # constant target C; the reconstruction of zero logits is 64 log 2.
  logits, images = jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 8, 8, 1))
  log_var = jnp.zeros((2, 4))
  gamma = 1000.0

  def loss_at(mean, target):
    hparams = dict(_HPARAMS, gamma=gamma, capacity_start=target,
                   capacity_max=target)
    return capacity.loss(_outputs(logits, mean, log_var), images, 7, hparams,
                         _STATIC)[0]

  for target, gap in [(1.0, 1.0), (3.0, 1.0), (2.0, 0.0)]:
    np.testing.assert_allclose(loss_at(jnp.ones((2, 4)), target),
                               64 * np.log(2) + gamma * gap, rtol=1e-6)
  # d KL / d mean = mean / batch = ½; below C the gradient raises KL, above C
  # it lowers it, with magnitude γ (Burgess et al. 2018, Eq. 8).
  below = jax.grad(loss_at)(jnp.ones((2, 4)), 3.0)
  above = jax.grad(loss_at)(jnp.ones((2, 4)), 1.0)
  np.testing.assert_allclose(below, -gamma * 0.5)
  np.testing.assert_allclose(above, gamma * 0.5)


def test_beta_one_is_the_negative_elbo():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=(4, 8, 8, 1)), jnp.float32)
  images = jnp.asarray(rng.uniform(size=(4, 8, 8, 1)) > 0.5, jnp.float32)
  mean = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  log_var = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  loss, terms = beta_vae.loss(_outputs(logits, mean, log_var), images, 0,
                              dict(_HPARAMS, beta=1.0), _STATIC)
  negative_elbo = np.mean(likelihoods.bernoulli_nll(logits, images) +
                          gaussians.kl_per_latent(mean, log_var).sum(-1))
  np.testing.assert_allclose(loss, negative_elbo, rtol=1e-5)
  np.testing.assert_allclose(terms['kl_per_latent'].sum(), terms['kl_total'],
                             rtol=1e-6)
  assert terms['loss'] is loss


def test_capacity_objective_reports_c_and_gap():
  mean = jnp.ones((2, 4))
  log_var = jnp.zeros((2, 4))  # KL = ½ per latent, 2 nats in total.
  logits = jnp.zeros((2, 8, 8, 1))
  images = jnp.zeros((2, 8, 8, 1))
  loss, terms = capacity.loss(_outputs(logits, mean, log_var), images, 50,
                              dict(_HPARAMS, capacity_max=10.0), _STATIC)
  np.testing.assert_allclose(terms['capacity'], 5.0)
  np.testing.assert_allclose(terms['kl_capacity_gap'], 3.0, rtol=1e-6)
  np.testing.assert_allclose(loss, 64 * np.log(2) + 1000 * 3.0, rtol=1e-6)


def test_gaussian_likelihood_is_used_when_configured():
  images = jnp.full((2, 4, 4, 1), 0.5)
  outputs = _outputs(jnp.zeros((2, 4, 4, 1)), jnp.zeros((2, 3)),
                     jnp.zeros((2, 3)))
  _, terms = beta_vae.loss(outputs, images, 0, dict(_HPARAMS, gaussian_stddev=0.5),
                           {'likelihood': 'gaussian'})
  expected = 16 * (0.5 * 1.0 + np.log(0.5) + 0.5 * np.log(2 * np.pi))
  np.testing.assert_allclose(terms['reconstruction'], expected, rtol=1e-6)


def test_registry_finds_objectives_and_names_unknown_ones():
  assert {'beta_vae', 'capacity', 'beta_tcvae', 'dip_vae'} <= set(
      objectives.names())
  assert objectives.get('capacity') is capacity
  with pytest.raises(ValueError, match='config.objective must be one of'):
    objectives.get('elbo')  # A building block, not an objective.
  with pytest.raises(ValueError, match='config.objective'):
    objectives.get('factor_vaee')


def test_unknown_likelihood_is_named():
  with pytest.raises(ValueError, match='config.likelihood'):
    likelihoods.reconstruction_nll(jnp.zeros((1, 2, 2, 1)),
                                   jnp.zeros((1, 2, 2, 1)), 'laplace', 1.0)
  with pytest.raises(ValueError, match='config.likelihood'):
    likelihoods.decoder_mean(jnp.zeros((1, 2)), 'laplace')
