"""β-TCVAE, DIP-VAE and AnnealedVAE against disentanglement_lib's formulas.

The references below are NumPy transcriptions (float64) of
google-research/disentanglement_lib, `disentanglement_lib/methods/unsupervised/
vae.py`: `compute_gaussian_kl` (L118-123), `anneal` and AnnealedVAE's
regularizer (L159-199), `compute_covariance_z_mean` (L286-305),
`regularize_diag_off_diag_dip` (L308-328), `DIPVAE.regularizer` (L355-371),
`gaussian_log_density` (L374-379), `total_correlation` (L382-417) and
`BetaTCVAE.regularizer` (L437-439); the closed-form checks are those of its
`vae_test.py`. The loss there is the batch-mean reconstruction plus the
regularizer, as here.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from bvae_jax.models import vae
from bvae_jax.objectives import beta_tcvae
from bvae_jax.objectives import capacity
from bvae_jax.objectives import dip_vae
from bvae_jax.objectives import gaussians
from bvae_jax.objectives import likelihoods


def _logsumexp(a, axis):
  peak = np.max(a, axis=axis, keepdims=True)
  return np.squeeze(peak, axis) + np.log(np.sum(np.exp(a - peak), axis=axis))


def reference_kl(mean, log_var):
  return np.mean(0.5 * np.sum(mean**2 + np.exp(log_var) - log_var - 1, axis=1))


def reference_log_density(samples, mean, log_var):
  return -0.5 * ((samples - mean)**2 * np.exp(-log_var) + log_var +
                 np.log(2 * np.pi))


def reference_total_correlation(z, mean, log_var):
  log_qz_prob = reference_log_density(z[:, None, :], mean[None], log_var[None])
  log_qz_product = np.sum(_logsumexp(log_qz_prob, axis=1), axis=1)
  log_qz = _logsumexp(np.sum(log_qz_prob, axis=2), axis=1)
  return np.mean(log_qz - log_qz_product)


def reference_covariance(mean):
  outer = np.mean(mean[:, :, None] * mean[:, None, :], axis=0)
  expected = np.mean(mean, axis=0)
  return outer - expected[:, None] * expected[None, :]


def reference_diag_off_diag(covariance, lambda_od, lambda_d):
  diagonal = np.diag(covariance)
  off_diagonal = covariance - np.diag(diagonal)
  return (lambda_od * np.sum(off_diagonal**2) +
          lambda_d * np.sum((diagonal - 1)**2))


def reference_dip_regularizer(kl, mean, log_var, lambda_od, lambda_d_factor,
                              dip_type):
  covariance = reference_covariance(mean)
  if dip_type == 'ii':
    covariance = covariance + np.diag(np.mean(np.exp(log_var), axis=0))
  return kl + reference_diag_off_diag(covariance, lambda_od,
                                      lambda_d_factor * lambda_od)


def _batch(seed, batch=8, latents=5):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(batch, latents))
  log_var = rng.normal(scale=0.5, size=(batch, latents))
  z = mean + np.exp(0.5 * log_var) * rng.normal(size=(batch, latents))
  logits = rng.normal(size=(batch, 4, 4, 1))
  images = (rng.uniform(size=(batch, 4, 4, 1)) > 0.5).astype(np.float64)
  return mean, log_var, z, logits, images


def _outputs(mean, log_var, z, logits):
  as32 = lambda a: jnp.asarray(a, jnp.float32)
  return vae.VAEOutput(decoder_output=as32(logits), mean=as32(mean),
                          log_var=as32(log_var), z=as32(z))


def _hparams(**values):
  return {'gaussian_stddev': 1.0, 'learning_rate': 1e-4,
          **{k: np.float32(v) for k, v in values.items()}}


def _reconstruction(logits, images):
  return np.mean(np.sum(np.maximum(logits, 0) - logits * images +
                        np.log1p(np.exp(-np.abs(logits))), axis=(1, 2, 3)))


def test_log_density_matches_vae_test_values():
  # vae_test.py test_gaussian_log_density: x = 1, log_var = 0, mean 0 and 1.
  np.testing.assert_allclose(gaussians.log_density(1.0, 0.0, 0.0), -1.418939,
                             rtol=1e-5)
  np.testing.assert_allclose(gaussians.log_density(1.0, 1.0, 0.0), -0.918939,
                             rtol=1e-5)


@pytest.mark.parametrize('seed', [0, 1])
def test_total_correlation_matches_disentanglement_lib(seed):
  mean, log_var, z, _, _ = _batch(seed)
  np.testing.assert_allclose(
      beta_tcvae.total_correlation(jnp.asarray(z, jnp.float32),
                                   jnp.asarray(mean, jnp.float32),
                                   jnp.asarray(log_var, jnp.float32)),
      reference_total_correlation(z, mean, log_var), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_total_correlation_of_identical_standard_posteriors_is_closed_form():
  # Every posterior N(0, 1): q(z) and each q(z_l) are the sample's own density,
  # so the estimate is (1 − L) · log B (no log(B·N) normalisation).
  batch, latents = 6, 4
  z = jnp.asarray(np.random.default_rng(2).normal(size=(batch, latents)),
                  jnp.float32)
  zeros = jnp.zeros((batch, latents))
  np.testing.assert_allclose(beta_tcvae.total_correlation(z, zeros, zeros),
                             (1 - latents) * np.log(batch), rtol=1e-5)


@pytest.mark.parametrize('beta', [1.0, 6.0])
def test_beta_tcvae_loss_is_elbo_plus_beta_minus_one_tc(beta):
  mean, log_var, z, logits, images = _batch(3)
  loss, terms = beta_tcvae.loss(_outputs(mean, log_var, z, logits),
                                jnp.asarray(images, jnp.float32), 0,
                                _hparams(beta=beta), {'likelihood': 'bernoulli'})
  kl = reference_kl(mean, log_var)
  tc = reference_total_correlation(z, mean, log_var)
  np.testing.assert_allclose(terms['total_correlation'], tc, rtol=1e-4)
  np.testing.assert_allclose(
      loss, _reconstruction(logits, images) + kl + (beta - 1) * tc, rtol=1e-4)


def test_diag_off_diag_penalty_matches_vae_test_values():
  # vae_test.py test_regularize_diag_off_diag_dip, λ_od = λ_d = 1, 10 × 10.
  for matrix, expected in [(np.ones((10, 10)), 90.0), (np.zeros((10, 10)), 10.0),
                           (np.eye(10), 0.0), (2 * np.eye(10), 10.0)]:
    np.testing.assert_allclose(
        dip_vae.diag_off_diag_penalty(jnp.asarray(matrix), 1.0, 1.0), expected)


@pytest.mark.parametrize('dip_type, lambda_od, factor',
                         [('i', 10.0, 10.0), ('ii', 5.0, 1.0)])
def test_dip_vae_loss_matches_disentanglement_lib(dip_type, lambda_od, factor):
  mean, log_var, z, logits, images = _batch(4)
  loss, terms = dip_vae.loss(
      _outputs(mean, log_var, z, logits), jnp.asarray(images, jnp.float32), 0,
      _hparams(dip_lambda_od=lambda_od, dip_lambda_d_factor=factor),
      {'likelihood': 'bernoulli', 'dip_type': dip_type})
  kl = reference_kl(mean, log_var)
  regularizer = reference_dip_regularizer(kl, mean, log_var, lambda_od, factor,
                                          dip_type)
  np.testing.assert_allclose(terms['dip_penalty'], regularizer - kl, rtol=1e-4)
  np.testing.assert_allclose(loss, _reconstruction(logits, images) + regularizer,
                             rtol=1e-4)
  np.testing.assert_allclose(
      dip_vae.covariance_of_means(jnp.asarray(mean)), reference_covariance(mean),
      rtol=1e-5, atol=1e-6)


def test_dip_vae_rejects_an_unknown_type():
  with pytest.raises(ValueError, match='config.dip_type'):
    dip_vae.dip_covariance(jnp.zeros((2, 3)), jnp.zeros((2, 3)), 'iii')


@pytest.mark.parametrize('step, expected', [(0, 0.0), (10, 10.0), (100, 100.0),
                                            (101, 100.0)])
def test_capacity_schedule_is_annealed_vae_anneal(step, expected):
  # vae_test.py test_anneal: c_max = 100, iteration_threshold = 100.
  np.testing.assert_allclose(capacity.capacity_schedule(step, 0.0, 100.0, 100),
                             expected, rtol=1e-6)


def test_reconstruction_is_disentanglement_lib_bernoulli_loss():
  _, _, _, logits, images = _batch(5)
  np.testing.assert_allclose(
      np.mean(likelihoods.bernoulli_nll(jnp.asarray(logits, jnp.float32),
                                        jnp.asarray(images, jnp.float32))),
      _reconstruction(logits, images), rtol=1e-5)
