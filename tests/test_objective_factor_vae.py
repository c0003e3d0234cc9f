"""FactorVAE against disentanglement_lib's definitions, formula by formula and one step.

The references are NumPy transcriptions (float64) of google-research/
disentanglement_lib: `methods/unsupervised/vae.py` `FactorVAE.model_fn`
(tc_loss_per_sample = logits_z[:, 0] − logits_z[:, 1]; discr_vae_loss =
½·mean log probs_z[:, 0] + ½·mean log probs_z_shuffle[:, 1]; the VAE
minimises reconstruction + KL + γ·tc_loss, the discriminator −discr_vae_loss,
both from one forward pass) and `shuffle_codes`; `methods/shared/
architectures.py` `fc_discriminator` (6 × dense 1000 with tf.nn.leaky_relu,
α = 0.2; 2 logits; softmax clipped to [1e-6, 1 − 1e-6]); and the discriminator
optimiser of `config/unsupervised_study_v1/model_configs/shared.gin` (Adam,
lr 1e-4, β₁ 0.5, β₂ 0.9).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bvae_jax.core import step as step_lib
from bvae_jax import experiment_config
from bvae_jax.models import factor_discriminator
from bvae_jax.models import vae
from bvae_jax.objectives import elbo
from bvae_jax.objectives import factor_vae
from tiny_configs import tiny_config


def reference_discriminator(params, z):
  """fc_discriminator in NumPy: (logits, clipped probabilities)."""
  hidden = np.asarray(z, np.float64)
  for index in range(6):
    layer = params[f'Dense_{index}']
    hidden = hidden @ np.asarray(layer['kernel'], np.float64) + layer['bias']
    hidden = np.where(hidden > 0, hidden, 0.2 * hidden)  # tf.nn.leaky_relu.
  logits = hidden @ np.asarray(params['Dense_6']['kernel'],
                               np.float64) + params['Dense_6']['bias']
  return logits, reference_clipped_softmax(logits)


def reference_clipped_softmax(logits):
  exp = np.exp(logits - logits.max(axis=1, keepdims=True))
  return np.clip(exp / exp.sum(axis=1, keepdims=True), 1e-6, 1 - 1e-6)


def reference_discr_vae_loss(logits_z, logits_shuffled):
  """disentanglement_lib's discr_vae_loss (which its optimiser maximises)."""
  return (0.5 * np.mean(np.log(reference_clipped_softmax(logits_z)[:, 0])) +
          0.5 * np.mean(np.log(reference_clipped_softmax(logits_shuffled)[:, 1])))


@pytest.mark.slow
def test_discriminator_is_fc_discriminator():
  params = factor_vae.init_auxiliary(10, jax.random.key(0)).params
  shapes = {name: layer['kernel'].shape for name, layer in params.items()}
  assert shapes == {**{f'Dense_{i}': (10 if i == 0 else 1000, 1000)
                       for i in range(6)}, 'Dense_6': (1000, 2)}
  assert all(not np.any(layer['bias']) for layer in params.values())
  # Glorot-uniform kernels (tf.layers.dense's default): |w| ≤ √(6/(in+out)).
  assert np.abs(params['Dense_1']['kernel']).max() <= np.sqrt(6 / 2000)
  z = np.random.RandomState(0).normal(size=(16, 10)).astype(np.float32)
  logits = factor_discriminator.FactorDiscriminator().apply({'params': params}, z)
  want_logits, want_probs = reference_discriminator(params, z)
  np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(factor_vae.clipped_probabilities(logits),
                             want_probs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('scale', [1.0, 30.0])  # 30: the clipping is active.
def test_tc_and_discriminator_loss_match_disentanglement_lib(scale):
  rng = np.random.RandomState(1)
  logits_z = scale * rng.normal(size=(32, 2))
  logits_shuffled = scale * rng.normal(size=(32, 2))
  np.testing.assert_allclose(
      factor_vae.total_correlation(jnp.asarray(logits_z, jnp.float32)),
      np.mean(logits_z[:, 0] - logits_z[:, 1]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      factor_vae.discriminator_loss(jnp.asarray(logits_z, jnp.float32),
                                    jnp.asarray(logits_shuffled, jnp.float32)),
      -reference_discr_vae_loss(logits_z, logits_shuffled), rtol=1e-5)


def test_an_undecided_discriminator_has_zero_tc_and_loss_log_two():
  # Logits 0: p = (½, ½), so TC = 0 and the loss is −(½ log ½ + ½ log ½).
  zeros = jnp.zeros((8, 2))
  assert factor_vae.total_correlation(zeros) == 0.0
  np.testing.assert_allclose(factor_vae.discriminator_loss(zeros, zeros),
                             np.log(2.0), rtol=1e-6)


def test_shuffle_codes_permutes_each_column_independently():
  z = jnp.arange(64 * 10, dtype=jnp.float32).reshape(64, 10)
  shuffled = np.asarray(factor_vae.shuffle_codes(z, jax.random.key(3)))
  for column in range(10):  # Each column holds its own values, reordered.
    np.testing.assert_array_equal(np.sort(shuffled[:, column]), z[:, column])
  orders = {tuple(np.argsort(shuffled[:, c])) for c in range(10)}
  assert len(orders) == 10  # Not one permutation for all columns.
  np.testing.assert_array_equal(
      shuffled, factor_vae.shuffle_codes(z, jax.random.key(3)))


def _hparams(gamma):
  return {'factor_vae_gamma': np.float32(gamma), 'learning_rate':
          np.float32(1e-3), 'gaussian_stddev': np.float32(1.0)}


@pytest.mark.slow
@pytest.mark.parametrize('gamma', [0.0, 35.0])
def test_vae_loss_is_elbo_plus_gamma_tc(gamma):
  rng = np.random.RandomState(2)
  outputs = vae.VAEOutput(
      decoder_output=jnp.asarray(rng.normal(size=(6, 4, 4, 1)), jnp.float32),
      mean=jnp.asarray(rng.normal(size=(6, 5)), jnp.float32),
      log_var=jnp.asarray(rng.normal(size=(6, 5)), jnp.float32),
      z=jnp.asarray(rng.normal(size=(6, 5)), jnp.float32))
  images = jnp.asarray(rng.uniform(size=(6, 4, 4, 1)), jnp.float32)
  auxiliary = factor_vae.init_auxiliary(5, jax.random.key(4))
  static = {'likelihood': 'bernoulli'}
  loss, terms = factor_vae.loss(outputs, images, 0, _hparams(gamma), static,
                                auxiliary)
  elbo_terms = elbo.elbo_terms(outputs, images, _hparams(gamma), static)
  logits, _ = reference_discriminator(auxiliary.params, outputs.z)
  tc = np.mean(logits[:, 0] - logits[:, 1])
  np.testing.assert_allclose(terms['total_correlation'], tc, rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(
      loss, elbo_terms['reconstruction'] + elbo_terms['kl_total'] + gamma * tc,
      rtol=1e-5)


def _tiny_state_and_batch(data_dir):
  config = tiny_config(data_dir, 'factor_vae', factor_vae_gamma=30.0,
                       learning_rate=1e-3)
  config = experiment_config.resolve(config)
  model = step_lib.create_model(config)
  init_key, noise_key = step_lib.rng_streams(config.seed)
  state = step_lib.create_train_state(model, init_key, config.objective)
  images = jnp.asarray(np.random.RandomState(5).uniform(
      size=(8, 64, 64, 1)) > 0.8, jnp.float32)
  return config, model, state, images, noise_key


@pytest.mark.slow
def test_one_step_updates_both_players_from_one_forward_pass(tmp_path):
  config, model, state, images, noise_key = _tiny_state_and_batch(
      str(tmp_path))
  assert isinstance(state, step_lib.AuxiliaryTrainState)
  hparams = step_lib.hyperparameters(config)
  new_state, metrics = jax.jit(lambda s: step_lib.train_step(
      s, images, noise_key, hparams, model=model,
      static=step_lib.static_fields(config)))(state)

  # The reference: one forward pass; the VAE's Adam on reconstruction + KL +
  # γ·TC (discriminator fixed), the discriminator's Adam(1e-4, 0.5, 0.9) on
  # −discr_vae_loss of z and its column-shuffled copy (z fixed).
  step_key = jax.random.fold_in(noise_key, 0)
  discriminator = factor_discriminator.FactorDiscriminator()

  def vae_loss(params):
    outputs = model.apply({'params': params}, images, step_key)
    terms = elbo.elbo_terms(outputs, images, hparams,
                            {'likelihood': 'bernoulli'})
    logits = discriminator.apply({'params': state.auxiliary.params}, outputs.z)
    return (terms['reconstruction'] + terms['kl_total'] +
            hparams['factor_vae_gamma'] * jnp.mean(logits[:, 0] - logits[:, 1]),
            outputs.z)

  (_, z), vae_grads = jax.value_and_grad(vae_loss, has_aux=True)(state.params)
  updates, _ = optax.adam(hparams['learning_rate']).update(
      vae_grads, state.opt_state, state.params)
  want_params = optax.apply_updates(state.params, updates)
  shuffled = factor_vae.shuffle_codes(z, jax.random.fold_in(step_key, 1))

  def discriminator_loss(params):
    logits_z = discriminator.apply({'params': params}, z)
    logits_shuffled = discriminator.apply({'params': params}, shuffled)
    probs_z = jnp.clip(jax.nn.softmax(logits_z), 1e-6, 1 - 1e-6)
    probs_shuffled = jnp.clip(jax.nn.softmax(logits_shuffled), 1e-6, 1 - 1e-6)
    return -(0.5 * jnp.mean(jnp.log(probs_z[:, 0])) +
             0.5 * jnp.mean(jnp.log(probs_shuffled[:, 1])))

  value, grads = jax.value_and_grad(discriminator_loss)(state.auxiliary.params)
  updates, _ = optax.adam(1e-4, b1=0.5, b2=0.9, eps=1e-8).update(
      grads, state.auxiliary.opt_state, state.auxiliary.params)
  want_discriminator = optax.apply_updates(state.auxiliary.params, updates)

  np.testing.assert_allclose(metrics['discriminator_loss'], value, rtol=1e-5)
  # The jitted step and this eager reference round differently in the last
  # bits, and Adam's first step is ±lr wherever |gradient| ≫ ε, so an element
  # whose gradient is a near-cancelling sum can move differently (seen: 1 in
  # 10⁵ elements, by ≤ 1e-5). A wrong formula, an updated discriminator in the
  # VAE's loss or another permutation moves far more elements.
  for got, want, learning_rate in (
      (new_state.params, want_params, hparams['learning_rate']),
      (new_state.auxiliary.params, want_discriminator, 1e-4)):
    difference = np.concatenate([
        np.abs(np.asarray(g) - np.asarray(w)).ravel()
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))])
    assert np.mean(difference <= 1e-6) >= 0.9999
    assert difference.max() <= 2 * 3.17 * learning_rate  # Adam's step bound.
  assert int(new_state.step) == 1
  assert 0.0 <= float(metrics['discriminator_accuracy']) <= 1.0


def test_the_vae_initialisation_is_every_objectives():
  # The discriminator draws from a stream of its own, so FactorVAE starts from
  # the VAE parameters that every other objective starts from.
  model = step_lib.create_model(tiny_config('unused', 'factor_vae'))
  init_key, _ = step_lib.rng_streams(0)
  factor = step_lib.create_train_state(model, init_key, 'factor_vae')
  plain = step_lib.create_train_state(model, init_key, 'beta_vae')
  assert type(plain) is step_lib.TrainState
  for got, want in zip(jax.tree.leaves(factor.params),
                       jax.tree.leaves(plain.params)):
    np.testing.assert_array_equal(got, want)
