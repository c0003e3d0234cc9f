"""Data parallelism across device counts and processes, through the real CLI.

Each run is a fresh `python -m bvae_jax.main` process (a JAX process fixes its
device count at start-up): 1 vs 8 devices, checkpoints carried across device
counts, and 2 processes × 2 devices joined by jax.distributed on 127.0.0.1
(gloo collectives) against 1 process × 4 devices. Agreement is judged as in
training_equivalence.py.
"""

import os
import shutil
import subprocess
import sys

import pytest

from bvae_jax.core import checkpointing
from bvae_jax.evaluation import evaluate
import configs.capacity
from cli_processes import REPO
from cli_processes import TIMEOUT_SECONDS
from cli_processes import child_environment
from cli_processes import run
from event_files import read_events
from training_equivalence import assert_same_params
from training_equivalence import assert_same_trajectory
from tiny_configs import open_configured

STEPS = 6
LEARNING_RATE = 5e-4

# Child processes and notebooks: the whole file is in the slow tier.
pytestmark = pytest.mark.slow


def tiny_config(data_dir):
  config = configs.capacity.get_config()
  config.dataset = 'dsprites_procedural/tiny'
  config.data_dir = data_dir
  config.batch_size = 8
  config.num_train_steps = STEPS
  config.log_every_steps = 1
  config.checkpoint_every_steps = 3
  config.figure_every_steps = 1000
  config.capacity_anneal_steps = 100
  config.eval_every_steps = 0
  return config


def config_flags(data_dir):
  config = tiny_config(data_dir)
  return ['--config=configs/capacity.py'] + [
      f'--config.{field}={config[field]}' for field in (
          'dataset', 'data_dir', 'batch_size', 'num_train_steps',
          'log_every_steps', 'checkpoint_every_steps', 'figure_every_steps',
          'capacity_anneal_steps', 'eval_every_steps')]


def train(data_dir, workdir, devices):
  return run([sys.executable, '-m', 'bvae_jax.main', f'--workdir={workdir}',
              f'--cpu_devices={devices}'] + config_flags(data_dir))


def final_params(data_dir, workdir, step=STEPS):
  params, restored_step, _ = evaluate.restore_params(tiny_config(data_dir),
                                                     str(workdir), step)
  assert restored_step == step
  return params


def copy_until(source, destination, step):
  """A copy of a workdir whose checkpoints stop at `step` (to resume from)."""
  shutil.copytree(source, destination)
  checkpoints = os.path.join(destination, 'checkpoints')
  for name in os.listdir(checkpoints):
    if name.isdigit() and int(name) > step:
      shutil.rmtree(os.path.join(checkpoints, name))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('tfds'))
  open_configured(tiny_config(directory))  # Prepared once, not raced.
  return directory


def test_eight_devices_match_one_and_checkpoints_cross_device_counts(
    data_dir, tmp_path):
  one, eight = tmp_path / 'one_device', tmp_path / 'eight_devices'
  log = train(data_dir, one, 1).stderr
  assert 'Devices: 1 (cpu)' in log
  assert 'Devices: 8 (cpu)' in train(data_dir, eight, 8).stderr
  assert_same_trajectory(one, eight, STEPS)
  params_one = final_params(data_dir, one)
  assert_same_params(params_one, final_params(data_dir, eight),
                     learning_rate=LEARNING_RATE, steps=STEPS)

  # Written on 1 device, resumed on 8 from step 3; and the other way round.
  one_then_eight = tmp_path / 'one_then_eight'
  copy_until(one, one_then_eight, 3)
  resumed_log = train(data_dir, one_then_eight, 8).stderr
  assert 'Resuming from step 3' in resumed_log
  assert_same_params(params_one, final_params(data_dir, one_then_eight),
                     learning_rate=LEARNING_RATE, steps=STEPS)
  eight_then_one = tmp_path / 'eight_then_one'
  copy_until(eight, eight_then_one, 3)
  assert 'Resuming from step 3' in train(data_dir, eight_then_one, 1).stderr
  assert_same_params(params_one, final_params(data_dir, eight_then_one),
                     learning_rate=LEARNING_RATE, steps=STEPS)


def test_two_processes_match_one_process_with_as_many_devices(data_dir,
                                                              tmp_path):
  single, multi = tmp_path / 'one_process', tmp_path / 'two_processes'
  train(data_dir, single, 4)
  log_dir = tmp_path / 'logs'
  result = subprocess.run(
      ['bash', os.path.join(REPO, 'launch', 'local.sh'), '2', '2',
       f'--workdir={multi}'] + config_flags(data_dir),
      cwd=REPO, env=dict(child_environment(), PYTHON=sys.executable,
                         LOG_DIR=str(log_dir)),
      capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
  logs = {i: (log_dir / f'process_{i}.log').read_text() for i in (0, 1)}
  assert result.returncode == 0, (result.stderr[-3000:], logs[1][-3000:])
  assert 'Joined a 2-process job as process 1 (2 local devices)' in logs[1]
  assert 'Devices: 4 (cpu), processes: 2' in logs[0]

  assert_same_trajectory(single, multi, STEPS)
  assert_same_params(final_params(data_dir, single),
                     final_params(data_dir, multi),
                     learning_rate=LEARNING_RATE, steps=STEPS)
  # Only process 0 wrote logs and figures; both wrote the checkpoints.
  assert len(list(multi.glob('events.out.tfevents.*'))) == 1
  assert len(read_events(multi)) > STEPS
  assert sorted(os.listdir(multi / 'figures')) == [
      'kl_per_latent.png', f'reconstructions_{STEPS:08d}.png',
      f'traversal_{STEPS:08d}.gif', f'traversal_{STEPS:08d}.png']
  assert checkpointing.all_steps(str(multi)) == [3, 6]


def test_sweep_over_two_processes_matches_one_process(data_dir, tmp_path):
  # 4 members on 2 processes × 2 devices: mesh (members 2, data 2), each
  # process holding every member and half of each batch.
  flags = ['--config=configs/sweep_capacity.py:quick'] + [
      f'--config.{field}={value}' for field, value in (
          ('dataset', 'dsprites_procedural/tiny'), ('data_dir', data_dir),
          ('batch_size', 8), ('num_train_steps', 4), ('log_every_steps', 1),
          ('checkpoint_every_steps', 2), ('sweep.evaluate', False))]
  single, multi = tmp_path / 'one_process', tmp_path / 'two_processes'
  run([sys.executable, '-m', 'bvae_jax.main', f'--workdir={single}',
       '--cpu_devices=4'] + flags)
  result = subprocess.run(
      ['bash', os.path.join(REPO, 'launch', 'local.sh'), '2', '2',
       f'--workdir={multi}'] + flags,
      cwd=REPO, env=dict(child_environment(), PYTHON=sys.executable,
                         LOG_DIR=str(tmp_path / 'logs')),
      capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
  assert result.returncode == 0, result.stderr[-3000:]
  names = sorted(os.listdir(single / 'members'))
  assert names == sorted(os.listdir(multi / 'members')) and len(names) == 4
  for name in names:
    assert_same_trajectory(single / 'members' / name, multi / 'members' / name,
                           4)
  assert (multi / 'sweep_results.md').exists()
