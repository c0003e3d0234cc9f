"""End-to-end training: KL tracks C, bit-exact resume, and the failure paths."""

import json
import os

from absl import logging as absl_logging
import jax
import numpy as np
import pytest

from bvae_jax.core import checkpointing
from bvae_jax.core import run_records
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import input_pipeline
from bvae_jax.evaluation import evaluate
from bvae_jax.models import vae
from bvae_jax.objectives import gaussians
from bvae_jax.training import train
from tiny_configs import open_configured
from tiny_configs import tiny_config


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def params_of(state):
  return jax.tree_util.tree_leaves(jax.device_get(state.params))


def snapshot(workdir):
  """Every file under workdir with its size and modification time.

  Leaves out the workdir lock (run_records.LOCK_FILE): its text names the
  last process that held it, and a refused run did hold it while it checked.
  """
  listing = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      if os.path.relpath(path, workdir) == run_records.LOCK_FILE:
        continue
      stat = os.stat(path)
      listing[os.path.relpath(path, workdir)] = (stat.st_size, stat.st_mtime_ns)
  return listing


@pytest.mark.slow
def test_capacity_objective_pulls_kl_toward_c(data_dir, tmp_path):
  # C held at 4 nats (start = max); KL starts near 0 and γ·|KL − C| pulls it up.
  config = tiny_config(data_dir, num_train_steps=40, log_every_steps=40,
                       checkpoint_every_steps=40, figure_every_steps=40,
                       capacity_start=4.0, capacity_max=4.0, learning_rate=2e-3)
  state = train.train_and_evaluate(config, str(tmp_path))
  images = input_pipeline.fixed_images(open_configured(config), 64)
  mean, log_var = step_lib.create_model(config).apply(
      {'params': jax.device_get(state.params)}, images, method=vae.VAE.encode)
  kl = float(np.mean(np.sum(gaussians.kl_per_latent(mean, log_var), axis=-1)))
  assert abs(kl - 4.0) < 1.0, kl


@pytest.mark.slow
def test_workdir_outputs_and_figures(data_dir, tmp_path):
  config = tiny_config(data_dir, num_train_steps=4, figure_every_steps=4)
  train.train_and_evaluate(config, str(tmp_path))
  assert os.path.exists(tmp_path / 'config.json')
  assert json.load(open(tmp_path / 'config.json'))['batch_size'] == 8
  assert list((tmp_path).glob('events.out.tfevents.*'))
  names = sorted(os.listdir(tmp_path / 'figures'))
  assert names == ['kl_per_latent.png', 'reconstructions_00000004.png',
                   'traversal_00000004.gif', 'traversal_00000004.png']
  manager = checkpointing.create_manager(str(tmp_path), read_only=True)
  assert manager.all_steps() == [3, 4]


@pytest.mark.slow
def test_resume_is_bit_identical(data_dir, tmp_path, caplog):
  uninterrupted = train.train_and_evaluate(tiny_config(data_dir),
                                           str(tmp_path / 'a'))
  train.train_and_evaluate(tiny_config(data_dir, num_train_steps=3),
                           str(tmp_path / 'b'))
  absl_logging.get_absl_logger().propagate = True
  with caplog.at_level('INFO'):
    resumed = train.train_and_evaluate(tiny_config(data_dir), str(tmp_path / 'b'))
  assert 'Resuming from step 3' in caplog.text
  assert int(resumed.step) == 6
  for a, b in zip(params_of(uninterrupted), params_of(resumed)):
    np.testing.assert_array_equal(a, b)


def _empty_metadata(checkpoint):
  """Empties the state's _METADATA file, as a crash mid-write would leave it."""
  path = checkpoint / 'state' / '_METADATA'
  assert path.exists()
  path.write_text('')


@pytest.mark.slow
def test_resume_skips_a_damaged_checkpoint_and_keeps_it(data_dir, tmp_path,
                                                        caplog):
  # Checkpoints at 3 and 6 of a 6-step run; the one at 6 is damaged. Training
  # to 9 resumes from 3, keeps the damaged one aside, and equals a clean run.
  clean = train.train_and_evaluate(tiny_config(data_dir, num_train_steps=9),
                                   str(tmp_path / 'clean'))
  workdir = tmp_path / 'damaged'
  train.train_and_evaluate(tiny_config(data_dir), str(workdir))
  _empty_metadata(workdir / 'checkpoints' / '6')
  absl_logging.get_absl_logger().propagate = True
  with caplog.at_level('INFO'):
    resumed = train.train_and_evaluate(tiny_config(data_dir, num_train_steps=9),
                                       str(workdir))
  assert f'{workdir / "checkpoints" / "6"} does not restore' in caplog.text
  assert 'Resuming from step 3' in caplog.text
  kept = workdir / 'checkpoints_damaged' / '6' / 'state' / '_METADATA'
  assert kept.exists() and kept.read_text() == ''
  for a, b in zip(params_of(clean), params_of(resumed)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_no_restorable_checkpoint_names_each_one(data_dir, tmp_path):
  train.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
  for step in (3, 6):
    _empty_metadata(tmp_path / 'checkpoints' / str(step))
  with pytest.raises(checkpointing.DamagedCheckpointsError) as error:
    train.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
  message = str(error.value)
  assert 'step 6' in message and 'step 3' in message
  assert "'state/_METADATA'" in message
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']  # Untouched.


@pytest.mark.slow
def test_same_seed_same_result_other_seed_differs(data_dir, tmp_path):
  run = lambda seed, name: params_of(train.train_and_evaluate(
      tiny_config(data_dir, num_train_steps=2, seed=seed), str(tmp_path / name)))
  a, b, c = run(0, 'a'), run(0, 'b'), run(1, 'c')
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, z) for x, z in zip(a, c))


@pytest.mark.slow
def test_other_architecture_in_workdir_fails_and_keeps_files(data_dir, tmp_path):
  train.train_and_evaluate(tiny_config(data_dir, num_train_steps=3), str(tmp_path))
  before = snapshot(tmp_path)
  with pytest.raises(checkpointing.CheckpointMismatchError) as error:
    train.train_and_evaluate(tiny_config(data_dir, latent_dim=6), str(tmp_path))
  message = str(error.value)
  assert str(tmp_path / 'checkpoints' / '3') in message
  assert 'latent_dim=10' in message
  assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_a_checkpointed_step_whose_evaluation_was_cut_off_is_evaluated_on_resume(
    data_dir, tmp_path):
  # A run stopped while evaluating the step it had just checkpointed (a 50k
  # study run did, at step 10,000) resumes after that step; without this its
  # results would never have that step.
  config = lambda steps: tiny_config(data_dir, num_train_steps=steps,
                                     eval_every_steps=3)
  train.train_and_evaluate(config(3), str(tmp_path))
  path = evaluate.metrics_path(str(tmp_path), 3)
  with open(path) as f:
    first = json.load(f)
  os.remove(path)  # As if the evaluation had been cut off.
  train.train_and_evaluate(config(6), str(tmp_path))
  with open(path) as f:
    again = json.load(f)
  assert again['metrics'] == first['metrics']  # The checkpoint's parameters.
  assert os.path.exists(evaluate.metrics_path(str(tmp_path), 6))


@pytest.mark.slow
def test_non_finite_loss_names_the_step_and_keeps_checkpoints(data_dir, tmp_path):
  train.train_and_evaluate(tiny_config(data_dir, num_train_steps=3), str(tmp_path))
  # σ = 1e-30 makes the Gaussian NLL overflow to inf on the first new step.
  config = tiny_config(data_dir, likelihood='gaussian', gaussian_stddev=1e-30)
  with pytest.raises(FloatingPointError, match='at step 4'):
    train.train_and_evaluate(config, str(tmp_path))
  manager = checkpointing.create_manager(str(tmp_path), read_only=True)
  assert manager.all_steps() == [3]


def test_batch_not_divisible_by_devices(data_dir, tmp_path):
  assert jax.device_count() == 2  # tests/conftest.py
  with pytest.raises(ValueError, match='config.batch_size=7 is not divisible'):
    train.train_and_evaluate(tiny_config(data_dir, batch_size=7), str(tmp_path))
  assert not os.path.exists(tmp_path / 'checkpoints')


@pytest.mark.slow
def test_a_kl_that_does_not_follow_c_is_warned_about(data_dir, tmp_path,
                                                     caplog):
  # C held at 4 nats with a γ far too small to pull the KL (≈0 at the start)
  # there: |KL − C| ≈ 4 nats at every log.
  config = tiny_config(data_dir, num_train_steps=4, log_every_steps=1,
                       checkpoint_every_steps=4, capacity_start=4.0,
                       capacity_max=4.0, gamma=1e-3)
  absl_logging.get_absl_logger().propagate = True
  with caplog.at_level('WARNING'):
    train.train_and_evaluate(config, str(tmp_path))
  warnings = [r.getMessage() for r in caplog.records
              if '|KL − C| has stayed above 1 nat' in r.getMessage()]
  assert len(warnings) == 1 and warnings[0].startswith('step 3:')
  assert 'γ = 0.001 is too small' in warnings[0]
