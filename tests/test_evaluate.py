"""Evaluation restored from Orbax checkpoints: exactness, outputs, errors."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from bvae_jax.core import checkpointing
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import input_pipeline
from bvae_jax.datasets import registry
from bvae_jax.evaluation import evaluate
from bvae_jax.models import vae
from bvae_jax.training import train
from tiny_configs import tiny_config as shared_tiny_config
from tiny_configs import open_configured


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def tiny_config(data_dir, **overrides):
  """A 4-step run with checkpoints at 2 and 4."""
  return shared_tiny_config(data_dir, **{
      'num_train_steps': 4, 'checkpoint_every_steps': 2, **overrides})


@pytest.fixture(scope='module')
def trained(data_dir, tmp_path_factory):
  """(config, workdir, final state) of a 4-step run with checkpoints 2 and 4."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = tiny_config(data_dir)
  state = train.train_and_evaluate(config, workdir)
  return config, workdir, state


def counting_ground_truth_builds(dataset, counts):
  """`dataset`, counting the ground truths it builds in counts['built']."""
  make = dataset.make_ground_truth

  def make_ground_truth():
    counts['built'] += 1
    return make()

  return dataclasses.replace(dataset, make_ground_truth=make_ground_truth)


def reconstructions(config, params, images):
  model = step_lib.create_model(config)
  mean, _ = model.apply({'params': params}, images, method=vae.VAE.encode)
  return np.asarray(model.apply({'params': params}, mean,
                                method=vae.VAE.decode))


@pytest.mark.slow
def test_restored_model_reproduces_the_saved_reconstructions_exactly(trained):
  config, workdir, state = trained
  params, step, stored_config = evaluate.restore_params(config, workdir)
  assert step == 4 and stored_config['dataset_source'] == 'procedural'
  images = input_pipeline.fixed_images(open_configured(config), 16)
  np.testing.assert_array_equal(
      reconstructions(config, params, images),
      reconstructions(config, jax.device_get(state.params), images))


@pytest.mark.slow
def test_representation_fn_pads_and_chunks_without_changing_codes(trained):
  config, workdir, _ = trained
  params, _, _ = evaluate.restore_params(config, workdir)
  images = input_pipeline.fixed_images(open_configured(config), 37)
  model = step_lib.create_model(config)
  expected, _ = model.apply({'params': params}, images,
                            method=vae.VAE.encode)
  for conv_impl in ('lax', 'matmul'):
    fn = evaluate.make_representation_fn(
        model.clone(conv_impl=conv_impl), params, encode_batch_size=16)
    codes = fn(images)  # Chunks of 16, 16 and 5 (padded to 8).
    assert codes.shape == (37, config.latent_dim)
    np.testing.assert_allclose(codes, expected, rtol=1e-4, atol=1e-5)
  sampled = evaluate.make_representation_fn(model, params, sampled=True,
                                            seed=3)
  again = evaluate.make_representation_fn(model, params, sampled=True, seed=3)
  np.testing.assert_array_equal(sampled(images), again(images))
  assert not np.allclose(sampled(images), expected)


@pytest.mark.slow
def test_evaluate_writes_json_tensorboard_and_figures(trained):
  config, workdir, _ = trained
  result = evaluate.evaluate(config, workdir, step=2)
  assert result['step'] == 2
  path = os.path.join(workdir, 'eval', 'metrics_2.json')
  assert json.load(open(path)) == json.loads(json.dumps(result))
  keys = {name: sorted(values) for name, values in result['metrics'].items()}
  assert keys == {
      'mig': ['discrete_mig'],
      'modularity_explicitness': ['explicitness_score_test',
                                  'explicitness_score_train',
                                  'modularity_score'],
      'dci': ['completeness', 'disentanglement', 'informativeness_test',
              'informativeness_train'],
      'sap': ['SAP_score'],
      'beta_vae': ['eval_accuracy', 'train_accuracy'],
      'factor_vae': ['eval_accuracy', 'num_active_dims', 'train_accuracy'],
  }
  for values in result['metrics'].values():
    assert all(np.isfinite(v) for v in values.values())
  assert len(result['kl_per_latent']) == config.latent_dim
  # Active: KL ≥ 0.1 nats (capacity_diagnostics.ACTIVE_KL_NATS).
  assert result['active_latents'] == [
      i for i, kl in enumerate(result['kl_per_latent']) if kl >= 0.1]
  # Both splits of the KL lie in [0, KL] (objectives/elbo.py); informative:
  # information ≥ 0.1 nats (capacity_diagnostics).
  kl = np.asarray(result['kl_per_latent'])
  for name in ('kl_input_dependent_per_latent', 'information_per_latent'):
    part = np.asarray(result[name])
    assert part.shape == (config.latent_dim,) and np.all(part >= -1e-6), name
    assert np.all(part <= kl + 1e-5), name
  assert result['informative_latents'] == [
      i for i, value in enumerate(result['information_per_latent'])
      if value >= 0.1]
  assert result['dataset']['source'] == 'procedural'
  names = sorted(os.listdir(os.path.join(workdir, 'eval')))
  assert names == ['metrics_2.json', 'mig_2.png', 'mutual_information_2.png']
  # Deterministic: the same checkpoint gives the same numbers.
  again = evaluate.evaluate(config, workdir, step=2)
  assert again['metrics'] == result['metrics']


def test_no_checkpoint_lists_what_is_there(data_dir, tmp_path):
  (tmp_path / 'notes.txt').write_text('x')
  with pytest.raises(evaluate.NoCheckpointError,
                     match=r"No checkpoint in .*checkpoints; .* holds: "
                     r"\['notes.txt'\]"):
    evaluate.evaluate(tiny_config(data_dir), str(tmp_path))


def test_missing_step_lists_the_available_ones(trained):
  config, workdir, _ = trained
  with pytest.raises(evaluate.NoCheckpointError,
                     match=r'No checkpoint for step 3 .*available steps: '
                     r'\[2, 4\]'):
    evaluate.evaluate(config, workdir, step=3)


def test_other_architecture_is_named(trained):
  config, workdir, _ = trained
  before = sorted(os.listdir(workdir))
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match='different architecture'):
    evaluate.evaluate(tiny_config(config.data_dir, latent_dim=6), workdir)
  assert sorted(os.listdir(workdir)) == before


def test_data_set_without_ground_truth_is_refused_before_encoding(
    trained, monkeypatch):
  config, workdir, _ = trained
  opened = open_configured(config)
  monkeypatch.setattr(registry, 'open_dataset', lambda *_: registry.Dataset(
      name='celeb_a', source='tfds_catalog', builder=opened.builder,
      images=opened.images, observation_shape=(64, 64, 1),
      make_ground_truth=None))
  with pytest.raises(ground_truth.NoGroundTruthError, match="'celeb_a'"):
    evaluate.evaluate(config, workdir)


def test_evaluate_reuses_an_open_data_set_and_its_ground_truth(
    trained, tmp_path, monkeypatch):
  config, workdir, _ = trained
  config = config.copy_and_resolve_references()
  config.eval.metrics = ('mig',)
  params, step, _ = evaluate.restore_params(config, workdir)
  counts = {'built': 0}
  dataset = counting_ground_truth_builds(open_configured(config), counts)

  def no_reopening(name, *_):
    raise AssertionError(f'{name} opened again')

  dataset.ground_truth()  # Built before, as by an earlier evaluation.
  monkeypatch.setattr(registry, 'open_dataset', no_reopening)
  result = evaluate.evaluate(config, str(tmp_path), step, params=params,
                             dataset=dataset)
  assert counts['built'] == 1
  assert set(result['metrics']) == {'mig'}
  assert result['dataset'] == dataset.describe()


@pytest.mark.slow
def test_training_evaluates_every_eval_every_steps(data_dir, tmp_path,
                                                   monkeypatch):
  counts = {'opened': 0, 'built': 0}
  open_dataset = registry.open_dataset

  def counting_open_dataset(*args):
    counts['opened'] += 1
    return counting_ground_truth_builds(open_dataset(*args), counts)

  monkeypatch.setattr(registry, 'open_dataset', counting_open_dataset)
  config = tiny_config(data_dir, eval_every_steps=3, num_train_steps=4)
  # The cadence and the one open data set are under test, not the metrics
  # (test_evaluate_writes_json_tensorboard_and_figures runs all six): one
  # metric on the shared codes, one that draws its own points.
  config.eval.metrics = ('mig', 'factor_vae')
  train.train_and_evaluate(config, str(tmp_path))
  # Step 3 by the period, step 4 as the last step.
  assert sorted(p for p in os.listdir(tmp_path / 'eval')
                if p.endswith('.json')) == ['metrics_3.json', 'metrics_4.json']
  # Both evaluations read the data set training opened.
  assert counts == {'opened': 1, 'built': 1}


@pytest.mark.slow
def test_training_evaluates_and_checkpoints_at_eval_at_steps(data_dir,
                                                             tmp_path):
  # Steps 3 and 5 are off the checkpoint interval (4): each is checkpointed
  # as well as evaluated, so --mode=evaluate can reproduce it.
  config = tiny_config(data_dir, num_train_steps=6, checkpoint_every_steps=4,
                       eval_at_steps=(3, 5), max_checkpoints_to_keep=10)
  config.eval.metrics = ('mig',)
  train.train_and_evaluate(config, str(tmp_path))
  assert sorted(p for p in os.listdir(tmp_path / 'eval')
                if p.endswith('.json')) == ['metrics_3.json', 'metrics_5.json']
  manager = checkpointing.create_manager(str(tmp_path), read_only=True)
  assert manager.all_steps() == [3, 4, 5, 6]
  during = json.load(open(tmp_path / 'eval' / 'metrics_3.json'))
  again = evaluate.evaluate(config, str(tmp_path), step=3)
  assert again['metrics'] == during['metrics']


@pytest.mark.parametrize('steps', [(0,), (7,), (2.5,)])
def test_eval_at_steps_outside_the_run_is_refused(data_dir, tmp_path, steps):
  config = tiny_config(data_dir, num_train_steps=6, eval_at_steps=steps)
  with pytest.raises(ValueError, match=r'config.eval_at_steps must be steps '
                     r'in \[1, num_train_steps=6\]'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not os.listdir(tmp_path)
