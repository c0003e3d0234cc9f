"""A checkpoint save that fails stops the run with one line naming the
directory and the OS error; the checkpoint before it stays intact, and rerunning
the same command after freeing space resumes from it, bit for bit.

The disk fills up for real, as far as the run can tell: the child process
runs under a file-size limit (RLIMIT_FSIZE, 1 MiB) that the tiny run's event
file, figures and config fit under and a checkpoint's array file (~2 MB) does
not, so the write fails inside TensorStore with EFBIG ("File too large"), as
it fails with ENOSPC on a full disk. CPython ignores SIGXFSZ, so the failed
write is an error, not a killed process.
"""

import subprocess
import sys

import jax
import numpy as np
import pytest

from cli_processes import REPO, child_environment, run
from tiny_configs import tiny_config

from bvae_jax.core import checkpointing
from bvae_jax.evaluation import evaluate

pytestmark = pytest.mark.slow

FILE_SIZE_LIMIT = 1 << 20


def command(data_dir, workdir, steps):
  return [sys.executable, '-m', 'bvae_jax.main',
          '--config=configs/capacity.py:quick', f'--workdir={workdir}',
          '--cpu_devices=1', '--config.dataset=dsprites_procedural/tiny',
          f'--config.data_dir={data_dir}', '--config.batch_size=4',
          f'--config.num_train_steps={steps}',
          '--config.checkpoint_every_steps=3', '--config.log_every_steps=1',
          '--config.figure_every_steps=100']


def run_on_a_full_disk(args):
  # bash's ulimit sets the limit and execs the command (a preexec_fn would
  # run Python in a fork of this multithreaded, JAX-holding process).
  limited = ['bash', '-c', f'ulimit -f {FILE_SIZE_LIMIT // 1024} && exec "$@"',
             'bash', *args]
  return subprocess.run(limited, cwd=REPO, env=child_environment(),
                        capture_output=True, text=True, timeout=240)


def final_params(data_dir, workdir, steps):
  config = tiny_config(data_dir, num_train_steps=steps, batch_size=4)
  params, _, _ = evaluate.restore_params(config, str(workdir), steps)
  return jax.tree.leaves(params)


def test_failed_save_stops_the_run_and_the_rerun_resumes(tiny_data_dir,
                                                         tmp_path):
  workdir = tmp_path / 'run'
  run(command(tiny_data_dir, workdir, 3))
  checkpoints = workdir / 'checkpoints'
  assert checkpointing.all_steps(str(workdir)) == [3]

  result = run_on_a_full_disk(command(tiny_data_dir, workdir, 6))
  assert result.returncode == 1, result.stderr[-3000:]
  # No traceback of the run's own. (TensorStore's threads print a few short
  # "Event loop is closed" tracebacks of their own when their writes fail
  # after Orbax gave up; they come from C++ callbacks, past any Python hook.)
  frames = [line for line in result.stderr.splitlines()
            if line.startswith('  File ')]
  assert not [f for f in frames if 'bvae_jax' in f], result.stderr[-3000:]
  error = [line for line in result.stderr.splitlines()
           if line.startswith('Error (CheckpointSaveError)')]
  assert len(error) == 1, result.stderr[-3000:]
  assert f'Saving a checkpoint in {checkpoints} failed' in error[0]
  assert 'File too large' in error[0]  # The OS's error, and Orbax's path:
  assert str(checkpoints / '6.orbax-checkpoint-tmp') in error[0]
  assert ('intact (steps 3): free space or fix the permissions and rerun the '
          'same command; it resumes from step 3.') in result.stderr
  assert checkpointing.all_steps(str(workdir)) == [3]

  resumed = run(command(tiny_data_dir, workdir, 6))
  assert 'Resuming from step 3' in resumed.stderr
  assert checkpointing.all_steps(str(workdir)) == [3, 6]

  straight = tmp_path / 'straight'
  run(command(tiny_data_dir, straight, 6))
  for a, b in zip(final_params(tiny_data_dir, workdir, 6),
                  final_params(tiny_data_dir, straight, 6)):
    np.testing.assert_array_equal(a, b)
