"""SIGTERM (a scheduler's preemption notice) mid-run: the loop finishes the
step in flight, saves a checkpoint there and exits with status 75
(loop.PREEMPTED_EXIT_STATUS); the same command resumes bit-identically.
Through the real command line, in child processes."""

import os
import signal
import subprocess
import sys

import numpy as np
import jax
import pytest

from bvae_jax.core import checkpointing
from bvae_jax.evaluation import evaluate
from bvae_jax.sweeps import sweep
from bvae_jax.training import loop
import configs.capacity
import configs.sweep_capacity
from cli_processes import REPO, child_environment, run

pytestmark = pytest.mark.slow

STEPS = 400
SIGNAL_AFTER = 'Step 100/'


@pytest.fixture(scope='module')
def data_dir(tiny_data_dir):
  return tiny_data_dir


def overrides(data_dir):
  return {'dataset': 'dsprites_procedural/tiny', 'data_dir': data_dir,
          'batch_size': 4, 'num_train_steps': STEPS, 'log_every_steps': 50,
          'checkpoint_every_steps': 100_000, 'figure_every_steps': 100_000,
          'capacity_anneal_steps': 200, 'eval_every_steps': 0}


def command(config_file, workdir, data_dir, *extra):
  return ([sys.executable, '-m', 'bvae_jax.main', f'--config={config_file}',
           f'--workdir={workdir}', '--cpu_devices=2'] +
          [f'--config.{k}={v}' for k, v in overrides(data_dir).items()] +
          list(extra))


def preempt(args):
  """Runs `args`, sends SIGTERM once SIGNAL_AFTER is logged; returns
  (exit status, stderr)."""
  child = subprocess.Popen(args, cwd=REPO, env=child_environment(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
  lines = []
  for line in child.stderr:
    lines.append(line)
    if SIGNAL_AFTER in line:
      child.send_signal(signal.SIGTERM)
      break
  rest = child.stderr.read()
  child.wait(timeout=300)
  return child.returncode, ''.join(lines) + rest


def preempted_step(stderr):
  marker = 'Preempted (SIGTERM) at step '
  assert marker in stderr, stderr[-3000:]
  return int(stderr.split(marker)[1].split(':')[0])


def assert_same(tree_a, tree_b):
  for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def solo_config(data_dir):
  config = configs.capacity.get_config()
  config.update(overrides(data_dir))
  return config


def test_sigterm_saves_the_step_and_the_resume_is_bit_identical(data_dir,
                                                                tmp_path):
  args = command('configs/capacity.py', tmp_path / 'preempted', data_dir)
  status, stderr = preempt(args)
  assert status == loop.PREEMPTED_EXIT_STATUS, stderr[-3000:]
  step = preempted_step(stderr)
  assert 100 <= step < STEPS
  assert 'preempted, resumable' in stderr
  assert 'Traceback' not in stderr
  assert checkpointing.all_steps(str(tmp_path / 'preempted')) == [step]

  resumed = run(args).stderr
  assert f'Resuming from step {step}' in resumed
  run(command('configs/capacity.py', tmp_path / 'straight', data_dir))
  config = solo_config(data_dir)
  assert_same(evaluate.restore_params(config, str(tmp_path / 'preempted'),
                                      STEPS)[0],
              evaluate.restore_params(config, str(tmp_path / 'straight'),
                                      STEPS)[0])


def test_sigterm_stops_a_sweep_resumably(data_dir, tmp_path):
  grid = ['--config.sweep.grid.capacity_max=(5.0,25.0)',
          '--config.sweep.evaluate=False', '--config.sweep.member_devices=1']
  args = command('configs/sweep_capacity.py:quick', tmp_path / 'preempted',
                 data_dir, *grid)
  status, stderr = preempt(args)
  assert status == loop.PREEMPTED_EXIT_STATUS, stderr[-3000:]
  step = preempted_step(stderr)
  assert checkpointing.all_steps(str(tmp_path / 'preempted')) == [step]
  assert f'Resuming from step {step}' in run(args).stderr
  run(command('configs/sweep_capacity.py:quick', tmp_path / 'straight',
              data_dir, *grid))
  config = configs.sweep_capacity.get_config('quick')
  config.update(overrides(data_dir))
  config.sweep.grid.capacity_max = (5.0, 25.0)
  config.sweep.evaluate = False
  config.sweep.member_devices = 1
  for member in (0, 1):
    assert_same(
        sweep.restore_member(config, str(tmp_path / 'preempted'), member)[1],
        sweep.restore_member(config, str(tmp_path / 'straight'), member)[1])


# A 2-process job on this machine (launch/local.sh, loopback coordinator).
MULTI_STEPS = 120
MULTI_SIGNAL_AFTER = 'Step 40/'


def local_job(workdir, data_dir, log_dir):
  """launch/local.sh's command for 2 processes × 1 device, and its env."""
  flags = [f'--config.{k}={v}' for k, v in dict(
      overrides(data_dir), num_train_steps=MULTI_STEPS,
      log_every_steps=20).items()]
  return (['bash', os.path.join(REPO, 'launch', 'local.sh'), '2', '1',
           '--config=configs/capacity.py', f'--workdir={workdir}', *flags],
          dict(child_environment(), PYTHON=sys.executable,
               LOG_DIR=str(log_dir)))


def run_job(args, env):
  result = subprocess.run(args, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])


def test_sigterm_stops_a_two_process_job_resumably(data_dir, tmp_path):
  # SIGTERM to the launcher, as a scheduler or `kill` sends it: local.sh
  # passes it on, JAX's preemption service has both processes agree on one
  # step (multihost_utils.reached_preemption_sync_point), and both save it.
  logs = tmp_path / 'logs'
  args, env = local_job(tmp_path / 'preempted', data_dir, logs)
  job = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in job.stdout:  # Process 0's log, through local.sh's tee.
    lines.append(line)
    if MULTI_SIGNAL_AFTER in line:
      job.send_signal(signal.SIGTERM)
      break
  output = ''.join(lines) + job.stdout.read()
  job.wait(timeout=300)
  assert job.returncode == loop.PREEMPTED_EXIT_STATUS, output[-3000:]
  assert 'preempted: the processes saved a checkpoint of the same step' in output
  marker = 'Preempted (preemption notice) at step '
  steps = [int((logs / f'process_{i}.log').read_text().split(marker)[1]
               .split(':')[0]) for i in (0, 1)]
  assert steps[0] == steps[1] and 40 <= steps[0] < MULTI_STEPS, steps
  assert checkpointing.all_steps(str(tmp_path / 'preempted')) == [steps[0]]

  run_job(args, env)
  assert (f'Resuming from step {steps[0]}' in
          (logs / 'process_0.log').read_text())
  run_job(*local_job(tmp_path / 'straight', data_dir, tmp_path / 'logs2'))
  config = solo_config(data_dir)
  config.num_train_steps = MULTI_STEPS
  assert_same(evaluate.restore_params(config, str(tmp_path / 'preempted'),
                                      MULTI_STEPS)[0],
              evaluate.restore_params(config, str(tmp_path / 'straight'),
                                      MULTI_STEPS)[0])
