"""Objectives as plug-ins, through training: the old objectives bit for bit, new ones end to end."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bvae_jax import config_defaults
from bvae_jax.core import devices
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import input_pipeline
from bvae_jax.evaluation import evaluate
from bvae_jax import experiment_config
from bvae_jax.sweeps import sweep
from bvae_jax.training import train
from event_files import read_events
from training_equivalence import assert_same_params
from training_equivalence import assert_same_trajectory
from tiny_configs import tiny_config as shared_tiny_config
from tiny_configs import open_configured


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def tiny_config(data_dir, objective, **overrides):
  config = shared_tiny_config(data_dir, objective, **{
      'num_train_steps': 4, 'checkpoint_every_steps': 2, **overrides})
  config.eval.metrics = ('mig', 'sap')
  return config


def _pre_plugin_objective(decoder_output, images, mean, log_var, step, config):
  """bvae_jax/objectives.py's `vae_objective` before the plug-in registry.

  Transcribed from commit f0d8431 (the last before the objectives package) so
  that the registry's capacity and β-VAE objectives can be held to it bit for
  bit.
  """
  per_pixel = images * jax.nn.softplus(-decoder_output) + (
      1.0 - images) * jax.nn.softplus(decoder_output)
  reconstruction = jnp.mean(jnp.sum(per_pixel, axis=(1, 2, 3)))
  kl_latents = jnp.mean(
      0.5 * (jnp.square(mean) + jnp.exp(log_var) - log_var - 1.0), axis=0)
  kl_total = jnp.sum(kl_latents)
  fraction = jnp.clip(
      jnp.asarray(step, jnp.float32) /
      jnp.asarray(config['capacity_anneal_steps'], jnp.float32), 0.0, 1.0)
  capacity = config['capacity_start'] + (
      config['capacity_max'] - config['capacity_start']) * fraction
  if config['objective'] == 'capacity':
    loss = reconstruction + config['gamma'] * jnp.abs(kl_total - capacity)
  else:
    loss = reconstruction + config['beta'] * kl_total
  return loss, {'loss': loss, 'reconstruction': reconstruction,
                'kl_total': kl_total, 'kl_per_latent': kl_latents}


def _pre_plugin_train_step(state, images, noise_key, hparams, *, model,
                           objective):
  """train.train_step as of commit f0d8431, on the transcribed objective."""
  step_key = jax.random.fold_in(noise_key, state.step)

  def loss_fn(params):
    outputs = model.apply({'params': params}, images, step_key)
    return _pre_plugin_objective(outputs.decoder_output, images, outputs.mean,
                                 outputs.log_var, state.step,
                                 {'objective': objective, **hparams})

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optax.adam(hparams['learning_rate']).update(
      grads, state.opt_state, state.params)
  metrics['grad_norm'] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1,
                       params=optax.apply_updates(state.params, updates),
                       opt_state=opt_state), metrics


def _train_steps(config, step_fn, steps=5):
  mesh = devices.create_mesh()
  model = step_lib.create_model(config)
  state = step_lib.initial_train_state(model, mesh, seed=config.seed,
                                       objective_name=config.objective)
  _, noise_key = step_lib.rng_streams(config.seed)
  batches = input_pipeline.create_train_iterator(
      open_configured(config), **input_pipeline.batch_order(config))
  sharding = devices.batch_sharded(mesh)
  for _ in range(steps):
    images = jax.device_put(next(batches)['image'], sharding)
    state, _ = step_fn(state, images, noise_key)
  return jax.device_get(state.params)


@pytest.mark.parametrize('objective, overrides', [
    ('capacity', dict(capacity_max=25.0, capacity_anneal_steps=3)),
    ('beta_vae', dict(beta=4.0)),
])
@pytest.mark.slow
def test_plugin_objectives_train_bit_identically_to_the_pre_plugin_step(
    data_dir, objective, overrides, users_xla_optimizations):
  config = tiny_config(data_dir, objective, **overrides)
  open_configured(config)
  mesh = devices.create_mesh()
  model = step_lib.create_model(config)
  replicated = devices.replicated(mesh)
  legacy_hparams = {name: np.float32(config[name]) for name in (
      'beta', 'gamma', 'capacity_start', 'capacity_max',
      'capacity_anneal_steps', 'gaussian_stddev', 'learning_rate')}
  legacy = jax.jit(
      functools.partial(_pre_plugin_train_step, model=model,
                        objective=objective),
      in_shardings=(replicated, devices.batch_sharded(mesh), replicated,
                    replicated),
      out_shardings=(replicated, replicated), donate_argnums=0)
  expected = _train_steps(
      config, lambda s, x, k: legacy(s, x, k, legacy_hparams))
  actual = _train_steps(config, step_lib.make_train_step(config, model, mesh))
  for got, want in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('objective, overrides, term', [
    ('beta_tcvae', dict(beta=6.0), 'total_correlation'),
    ('dip_vae', dict(dip_type='ii', dip_lambda_d_factor=1.0), 'dip_penalty'),
    ('dip_vae', dict(dip_type='i'), 'dip_penalty'),
    ('factor_vae', dict(factor_vae_gamma=30.0), 'discriminator_loss'),
])
@pytest.mark.slow
def test_new_objectives_train_log_their_terms_and_evaluate(
    data_dir, tmp_path, objective, overrides, term):
  config = tiny_config(data_dir, objective, **overrides)
  config = experiment_config.resolve(config)
  train.train_and_evaluate(config, str(tmp_path))
  result = evaluate.evaluate(config, str(tmp_path))
  assert result['step'] == 4
  assert 0.0 <= result['metrics']['mig']['discrete_mig'] <= 1.0
  with open(os.path.join(tmp_path, 'config.json')) as f:
    assert json.load(f)['objective'] == objective
  tags = {value.tag for event in read_events(tmp_path)
          for value in event.summary.value}
  assert term in tags and 'reconstruction' in tags


@pytest.mark.slow
def test_a_sweep_of_a_new_objective_reports_its_terms(data_dir, tmp_path):
  config = tiny_config(data_dir, 'beta_tcvae', num_train_steps=3,
                       log_every_steps=1, checkpoint_every_steps=3)
  config.sweep = config_defaults.sweep_block(
      seeds=(0,), grid={'beta': (1.0, 6.0)}, evaluate=False)
  sweep.train_sweep(config, str(tmp_path))
  with open(tmp_path / 'sweep_results.json') as f:
    members = json.load(f)['members']
  assert [m['member'] for m in members] == ['beta=1,seed=0', 'beta=6,seed=0']
  assert all('total_correlation' in m and 'grad_norm' in m for m in members)
  assert 'capacity' not in members[0]


def test_a_sweep_rejects_a_field_its_objective_does_not_read(data_dir):
  config = tiny_config(data_dir, 'beta_tcvae')
  config.sweep = config_defaults.sweep_block(seeds=(0,),
                                               grid={'gamma': (1.0, 2.0)})
  with pytest.raises(ValueError, match="objective 'beta_tcvae'"):
    sweep.sweep_members(config)


@pytest.mark.slow
def test_factor_vae_sweep_members_match_solo_runs_with_the_discriminator(
    data_dir, tmp_path):
  # The discriminator and its Adam live in the train state, so they are
  # vmapped with the VAE, checkpointed, and restored: member 0's solo run is
  # interrupted after 2 steps and resumed, and must still equal the member.
  config = tiny_config(data_dir, 'factor_vae', log_every_steps=1,
                       checkpoint_every_steps=2)
  config.sweep = config_defaults.sweep_block(
      seeds=(0,), grid={'factor_vae_gamma': (10.0, 40.0)}, evaluate=False)
  state = sweep.train_sweep(config, str(tmp_path / 'sweep'))
  for member in sweep.sweep_members(config):
    solo_config = sweep.member_config(config, member)
    solo_dir = str(tmp_path / member.name)
    if member.index == 0:
      solo_config.num_train_steps = 2
      train.train_and_evaluate(solo_config, solo_dir)
      solo_config.num_train_steps = 4
    solo = train.train_and_evaluate(solo_config, solo_dir)
    assert isinstance(solo, step_lib.AuxiliaryTrainState)
    assert_same_trajectory(str(tmp_path / 'sweep' / 'members' / member.name),
                           solo_dir, 4)
    assert_same_params(sweep.member_params(state, member.index), solo.params,
                       learning_rate=solo_config.learning_rate, steps=4)
    assert_same_params(
        jax.tree.map(lambda leaf, i=member.index: sweep.host_array(leaf)[i],
                     state.members.auxiliary.params),
        solo.auxiliary.params, learning_rate=1e-4, steps=4)
  with open(tmp_path / 'sweep' / 'sweep_results.json') as f:
    members = json.load(f)['members']
  assert all('discriminator_loss' in m and 'total_correlation' in m
             for m in members)
