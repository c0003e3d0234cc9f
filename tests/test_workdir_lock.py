"""One writer per workdir (run_records.workdir_lock): a second run is refused
at once, naming the workdir and the process that holds it; a lock left by a
killed process never blocks the next run."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from bvae_jax.core import run_records
from cli_processes import REPO, child_environment

_HOLD_SCRIPT = '''
import sys, time
from bvae_jax.core import run_records
with run_records.workdir_lock(sys.argv[1]):
  print('locked', flush=True)
  time.sleep(600)
'''


def _hold_in_child(workdir):
  """A child process that takes the lock and sleeps; returns it once locked."""
  child = subprocess.Popen([sys.executable, '-c', _HOLD_SCRIPT, str(workdir)],
                           cwd=REPO, env=child_environment(),
                           stdout=subprocess.PIPE, text=True)
  assert child.stdout.readline().strip() == 'locked'
  return child


def test_lock_is_reentrant_and_names_its_holder(tmp_path):
  with run_records.workdir_lock(str(tmp_path)):
    with run_records.workdir_lock(str(tmp_path)):  # E.g. training's evaluation.
      pass
    text = (tmp_path / run_records.LOCK_FILE).read_text()
    assert text.startswith(f'pid {os.getpid()} on ')
  with run_records.workdir_lock(str(tmp_path)):  # Released: taken again.
    pass


def test_second_holder_is_refused_and_a_killed_holder_blocks_nothing(tmp_path):
  child = _hold_in_child(tmp_path)
  try:
    with pytest.raises(run_records.WorkdirInUseError,
                       match=f'{tmp_path} is in use by another run '
                       rf'\(pid {child.pid} on '):
      with run_records.workdir_lock(str(tmp_path)):
        pass
  finally:
    child.send_signal(signal.SIGKILL)  # No cleanup runs: the OS drops it.
    child.wait()
  with run_records.workdir_lock(str(tmp_path)):
    pass


def test_disabled_or_missing_workdir_is_not_locked_nor_created(tmp_path):
  child = _hold_in_child(tmp_path)
  try:
    with run_records.workdir_lock(str(tmp_path), enabled=False):
      pass  # Processes other than 0 of a job.
  finally:
    child.kill()
    child.wait()
  with run_records.workdir_lock(str(tmp_path / 'absent'), create=False):
    pass
  assert not (tmp_path / 'absent').exists()


@pytest.fixture(scope='module')
def data_dir(tiny_data_dir):
  return tiny_data_dir


@pytest.mark.slow
def test_the_same_command_twice_refuses_the_second_and_spares_the_first(
    data_dir, tmp_path):
  workdir = tmp_path / 'run'
  command = [
      sys.executable, '-m', 'bvae_jax.main', '--config=configs/capacity.py',
      f'--workdir={workdir}', '--cpu_devices=1',
      '--config.dataset=dsprites_procedural/tiny',
      f'--config.data_dir={data_dir}', '--config.batch_size=4',
      '--config.num_train_steps=300', '--config.log_every_steps=100',
      '--config.checkpoint_every_steps=100', '--config.figure_every_steps=300',
      '--config.eval_every_steps=0']
  first = subprocess.Popen(command, cwd=REPO, env=child_environment(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
  lock = workdir / run_records.LOCK_FILE
  deadline = time.monotonic() + 120
  while not (lock.exists() and lock.read_text()):
    assert first.poll() is None and time.monotonic() < deadline
    time.sleep(0.2)
  second = subprocess.run(command, cwd=REPO, env=child_environment(),
                          capture_output=True, text=True, timeout=120)
  _, first_stderr = first.communicate(timeout=300)
  assert second.returncode == 1, second.stderr[-3000:]
  assert f'{workdir} is in use by another run (pid {first.pid} on ' in (
      second.stderr)
  assert 'Traceback' not in second.stderr
  assert first.returncode == 0, first_stderr[-3000:]
  assert 'Step 300/300' in first_stderr
  # Only the first wrote: one event file, checkpoints up to its last step.
  assert len(glob.glob(str(workdir / 'events.out.tfevents.*'))) == 1
  assert sorted(os.listdir(workdir / 'checkpoints'), key=int)[-1] == '300'
