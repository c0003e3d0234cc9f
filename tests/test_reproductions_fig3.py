"""Burgess et al. (2018) Fig. 3: the generator's inputs, channels, training and outputs."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs.burgess_fig3
from bvae_jax.datasets import dsprites
from bvae_jax.models import factor_generator
from bvae_jax.reproductions import burgess_fig3
from bvae_jax.reproductions import factor_inputs


def _all_values_of_each_factor():
  """Every factor combination once: each value equally often."""
  return dsprites.index_to_factors(np.arange(dsprites.NUM_IMAGES))


def test_inputs_are_standardised_columns_in_group_order():
  inputs = factor_inputs.dsprites_factor_inputs(
      _all_values_of_each_factor()).astype(np.float64)
  assert inputs.shape[1] == sum(factor_inputs.GROUP_SIZES) == 8
  # pos_x, pos_y, scale and the one-hot shape: exactly zero mean, unit variance.
  np.testing.assert_allclose(inputs[:, :6].mean(axis=0), 0, atol=1e-5)
  np.testing.assert_allclose(inputs[:, :6].var(axis=0), 1, rtol=1e-4)
  # Orientation's 40 values count θ = 0 twice: nearly standard.
  np.testing.assert_allclose(inputs[:, 6:].var(axis=0), 1, atol=0.05)


def test_orientation_is_periodic_and_shape_categorical():
  factors = np.array([[0, 5, 0, 3, 4], [0, 5, 39, 3, 4], [1, 5, 0, 3, 4],
                      [2, 5, 0, 3, 4]])
  inputs = factor_inputs.dsprites_factor_inputs(factors)
  # θ = 0 and θ = 2π (first and last values) are one input.
  np.testing.assert_allclose(inputs[0], inputs[1], atol=1e-6)
  shapes = inputs[[0, 2, 3], 3:6]
  distances = [np.linalg.norm(shapes[i] - shapes[j])
               for i, j in ((0, 1), (0, 2), (1, 2))]
  np.testing.assert_allclose(distances, distances[0], rtol=1e-6)


def test_scalar_encoding_is_one_standardised_column_per_factor():
  factors = dsprites.index_to_factors(np.arange(dsprites.NUM_IMAGES))
  inputs = factor_inputs.dsprites_factor_inputs(
      factors, 'scalar').astype(np.float64)
  assert inputs.shape == (len(factors), 5)
  np.testing.assert_allclose(inputs.mean(axis=0), 0, atol=1e-5)
  np.testing.assert_allclose(inputs.var(axis=0), 1, rtol=1e-4)
  # Shape keeps its order (square < ellipse < heart), one value each.
  assert len(np.unique(inputs[:, 3])) == 3
  with pytest.raises(ValueError, match='factor encoding'):
    factor_inputs.group_sizes('one_hot')


def test_inputs_refuse_an_out_of_range_factor_by_name():
  with pytest.raises(ValueError, match='orientation'):
    factor_inputs.dsprites_factor_inputs(np.array([[0, 0, 40, 0, 0]]))


def _channel_params(scale, log_var):
  return {'params': {'signal_scale': jnp.asarray(scale, jnp.float32),
                     'noise_log_var': jnp.asarray(log_var, jnp.float32)}}


def test_channel_kl_is_the_gaussian_kl_summed_per_factor():
  channels = factor_generator.NoisyFactorChannels(group_sizes=(1, 2))
  inputs = jnp.array([[0.5, 1.0, -2.0], [2.0, 0.0, 1.0]])
  scale, log_var = np.array([1.5, 0.3]), np.array([-1.0, 0.4])
  z, kl = channels.apply(_channel_params(scale, log_var), inputs,
                         jax.random.key(0))
  # KL(N(m, s²) ‖ N(0, 1)) = ½ (m² + s² − log s² − 1), Kingma & Welling B.
  def kl_1d(m, lv):
    return 0.5 * (m**2 + np.exp(lv) - lv - 1)
  expected = np.stack([
      kl_1d(scale[0] * inputs[:, 0], log_var[0]),
      kl_1d(scale[1] * inputs[:, 1], log_var[1]) +
      kl_1d(scale[1] * inputs[:, 2], log_var[1])], axis=1)
  np.testing.assert_allclose(kl, expected, rtol=1e-6)
  assert z.shape == inputs.shape


def test_channel_kl_meets_the_gaussian_channel_capacity_when_the_code_is_standard():
  # E_f KL = I(f; z) + KL(q(z) ‖ N(0, 1)); with a² + σ² = 1 the marginal is
  # N(0, 1) for unit-variance f and the KL is the capacity −½ log σ²
  # (Cover & Thomas 9.1). ±1 inputs have exactly unit second moment.
  channels = factor_generator.NoisyFactorChannels(group_sizes=(1,))
  noise_var = 0.2
  params = _channel_params([np.sqrt(1 - noise_var)], [np.log(noise_var)])
  _, kl = channels.apply(params, jnp.array([[1.0], [-1.0]]), jax.random.key(0))
  np.testing.assert_allclose(kl.mean(), -0.5 * np.log(noise_var), rtol=1e-6)


def test_channel_noise_has_the_learned_scale():
  channels = factor_generator.NoisyFactorChannels(group_sizes=(1,))
  params = _channel_params([2.0], [np.log(0.25)])
  z, _ = channels.apply(params, jnp.ones((20_000, 1)), jax.random.key(3))
  assert float(z.mean()) == pytest.approx(2.0, abs=0.01)
  assert float(z.std()) == pytest.approx(0.5, rel=0.02)


def test_channels_refuse_inputs_of_the_wrong_width():
  channels = factor_generator.NoisyFactorChannels(group_sizes=(1, 2))
  with pytest.raises(ValueError, match='need 3'):
    channels.init(jax.random.key(0), jnp.zeros((2, 4)), jax.random.key(1))


def test_snapshot_steps_are_where_the_schedule_reaches_each_capacity():
  config = configs.burgess_fig3.get_config('quick')
  steps = burgess_fig3.snapshot_steps(config)
  assert sorted(steps.values()) == list(config.snapshot_capacities)
  for step, target in steps.items():
    schedule = dict(start=config.capacity_start, maximum=config.capacity_max,
                    anneal_steps=config.capacity_anneal_steps)
    assert float(burgess_fig3.capacity_at(step, **schedule)) >= target - 1e-4
    assert float(burgess_fig3.capacity_at(step - 1, **schedule)) < target


def test_allocation_reads_onsets_and_final_kl_from_the_history():
  capacities = {100 * i: 0.5 + i for i in range(1, 11)}
  history = {'capacity': capacities,
             'reconstruction': {s: 100.0 - s / 100 for s in capacities}}
  for index, name in enumerate(factor_inputs.FACTOR_NAMES):
    # Factor k passes 0.5 nats at the (k + 1)-th log step; orientation never.
    history[f'kl/{name}'] = {
        s: (0.0 if name == 'orientation' else
            (1.0 if s >= 100 * (index + 1) else 0.4)) for s in capacities}
  allocation = burgess_fig3.capacity_allocation(history)
  assert allocation['factors']['pos_x'] == {'onset_nats': 1.5, 'final_kl': 1.0}
  assert allocation['factors']['shape']['onset_nats'] == 4.5
  assert allocation['factors']['orientation'] == {'onset_nats': None,
                                                  'final_kl': 0.0}
  assert allocation['final_step'] == 1000


def _tiny_config(num_train_steps):
  config = configs.burgess_fig3.get_config('quick')
  config.batch_size = 4 * jax.device_count()
  config.num_train_steps = num_train_steps
  config.capacity_anneal_steps = 6
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.snapshot_capacities = (9.0, 17.0)
  return config


def _leaves(state):
  return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state.params)]


@pytest.mark.slow
def test_training_resumes_bit_exactly_and_writes_the_outputs(tmp_path):
  straight = burgess_fig3.train(_tiny_config(6), str(tmp_path / 'straight'))
  resumed_dir = str(tmp_path / 'resumed')
  burgess_fig3.train(_tiny_config(3), resumed_dir)
  resumed = burgess_fig3.train(_tiny_config(6), resumed_dir)
  assert int(resumed.step) == 6
  for a, b in zip(_leaves(straight), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)

  summary = burgess_fig3.summarise(
      resumed_dir, burgess_fig3.snapshot_steps(_tiny_config(6)).values())
  assert set(summary['factors']) == set(factor_inputs.FACTOR_NAMES)
  # Logged values are interval means: C over the updates of steps 4 and 5.
  assert summary['final_step'] == 6
  assert summary['final_capacity'] == pytest.approx(0.5 + 24.5 * 4.5 / 6)
  assert summary['reconstruction_snapshots_at_capacity'] == [9.0, 17.0]
  with open(os.path.join(resumed_dir, 'capacity_allocation.json')) as f:
    assert json.load(f) == json.loads(json.dumps(summary))
  for name in ('fig3_capacity_allocation.png', 'fig3_reconstructions.png'):
    assert os.path.getsize(os.path.join(resumed_dir, name)) > 0
  with np.load(os.path.join(resumed_dir, 'reconstructions', 'C_9.0.npz')) as s:
    assert s['reconstructions'].shape == (burgess_fig3.NUM_SNAPSHOT_EXAMPLES,
                                          64, 64, 1)
    # C(2) = 0.5 + 24.5 · 2/6 = 8.67 < 9 ≤ C(3) = 12.75.
    assert int(s['step']) == 3


@pytest.mark.slow
@pytest.mark.parametrize('encoding', factor_inputs.ENCODINGS)
def test_the_capacity_term_opens_every_channel(encoding):
  # KL ≈ 0.04 nats at initialisation, C ≥ 0.5: γ·|KL − C| must raise every
  # factor's signal scale, whatever the reconstruction. (Not its noise: at
  # σ = 1 the KL's gradient in log σ², ½ (σ² − 1), is zero.)
  config = _tiny_config(3)
  config.factor_encoding = encoding
  model = burgess_fig3.create_model(config.factor_encoding)
  optimizer = burgess_fig3.create_optimizer(config.learning_rate,
                                            config.channel_learning_rate)
  state = burgess_fig3.create_state(model, jax.random.key(0), optimizer)
  capacity_fn = functools.partial(
      burgess_fig3.capacity_at, start=config.capacity_start,
      maximum=config.capacity_max, anneal_steps=config.capacity_anneal_steps)
  step = jax.jit(lambda s, x, y: burgess_fig3.train_step(
      s, x, y, jax.random.key(1), model=model, optimizer=optimizer,
      gamma=config.gamma, capacity_fn=capacity_fn))
  for i in range(3):
    state, metrics = step(state, *burgess_fig3.training_batch(
        i, seed=config.seed, batch_size=config.batch_size,
        factor_encoding=config.factor_encoding))
  channels = state.params['channels']
  assert np.all(np.asarray(channels['signal_scale']) >
                factor_generator.INITIAL_SIGNAL_SCALE)
  assert float(metrics['kl_total']) < float(metrics['capacity'])
