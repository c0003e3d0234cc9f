"""Errors a user can act on: one or two lines from `python -m bvae_jax.main`,
naming the field, file or step, and exit status 1 (the traceback only with
--traceback). Each runs the command line as a user does, in a child process.
"""

import os
import shutil
import subprocess
import sys

import pytest

from cli_processes import REPO, child_environment, run

pytestmark = pytest.mark.slow


def main(*args, timeout=240):
  """Runs bvae_jax.main with `args`; returns the CompletedProcess."""
  return subprocess.run([sys.executable, '-m', 'bvae_jax.main', *args],
                        cwd=REPO, env=child_environment(), capture_output=True,
                        text=True, timeout=timeout)


def assert_user_error(result, *fragments):
  """Exit status 1, each fragment in stderr, no traceback."""
  assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  for fragment in fragments:
    assert fragment in result.stderr, (fragment, result.stderr[-3000:])


@pytest.fixture(scope='module')
def data_dir(tiny_data_dir):
  return tiny_data_dir


def tiny_flags(data_dir, workdir, *extra):
  return ['--config=configs/capacity.py:quick', f'--workdir={workdir}',
          '--cpu_devices=1', '--config.dataset=dsprites_procedural/tiny',
          f'--config.data_dir={data_dir}', '--config.batch_size=4',
          '--config.num_train_steps=2', '--config.checkpoint_every_steps=1',
          '--config.log_every_steps=1', '--config.figure_every_steps=2',
          *extra]


@pytest.fixture(scope='module')
def trained(data_dir, tmp_path_factory):
  """A finished 2-step run with checkpoints at steps 1 and 2."""
  workdir = tmp_path_factory.mktemp('trained') / 'run'
  run([sys.executable, '-m', 'bvae_jax.main', *tiny_flags(data_dir, workdir)])
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['1', '2']
  return workdir


def test_bad_config_value_names_the_field(tmp_path):
  result = main('--config=configs/capacity.py:quick', '--config.gamma=-1',
                f'--workdir={tmp_path / "run"}')
  assert_user_error(result, 'config.gamma must be ≥ 0')
  assert not (tmp_path / 'run').exists()


def test_traceback_flag_shows_the_traceback(tmp_path):
  result = main('--config=configs/capacity.py:quick', '--config.gamma=-1',
                f'--workdir={tmp_path / "run"}', '--traceback')
  assert result.returncode != 0
  assert 'Traceback' in result.stderr
  assert 'config.gamma must be ≥ 0' in result.stderr


def test_unknown_objective_lists_the_known_ones(tmp_path):
  result = main('--config=configs/capacity.py:quick',
                '--config.objective=nope', f'--workdir={tmp_path}')
  assert_user_error(result, 'config.objective must be one of',
                    "'beta_vae'", "got 'nope'")


def test_unknown_config_argument_is_one_line(tmp_path):
  result = main('--config=configs/capacity.py:quick,datset=x',
                f'--workdir={tmp_path}')
  assert_user_error(result, "Unknown config argument 'datset'; known: "
                    "['dataset', 'quick']")


def test_override_of_no_field_suggests_the_field(tmp_path):
  result = main('--config=configs/capacity.py:quick', '--config.gama=3',
                f'--workdir={tmp_path}')
  assert_user_error(result, "--config.gama: the config has no field 'gama'",
                    'Did you mean "gamma"')


def test_workdir_that_is_a_file_is_refused_before_the_data(tmp_path):
  workdir = tmp_path / 'notes.txt'
  workdir.write_text('x')
  for mode in ('train', 'evaluate'):
    result = main('--config=configs/capacity.py:quick', f'--workdir={workdir}',
                  f'--mode={mode}')
    assert_user_error(result, f'--workdir {workdir} is a file, not a directory')
    assert 'Data set' not in result.stderr  # Nothing was opened.
  assert workdir.read_text() == 'x'


def test_evaluate_without_a_checkpoint_says_what_is_there(tmp_path):
  (tmp_path / 'notes.txt').write_text('x')
  result = main('--config=configs/capacity.py:quick', '--mode=evaluate',
                f'--workdir={tmp_path}')
  assert_user_error(result, 'No checkpoint in', "holds: ['notes.txt']")


def test_missing_data_says_how_to_get_it(tmp_path):
  result = main('--config=configs/capacity.py:quick',
                '--config.dataset_source=real',
                f'--config.data_dir={tmp_path / "empty"}',
                f'--workdir={tmp_path / "run"}')
  assert_user_error(result, 'dsprites: no real data',
                    "config.dataset_source='procedural'")


def test_workdir_of_another_architecture_is_named(data_dir, trained, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(trained, workdir)
  before = sorted(os.listdir(workdir / 'checkpoints'))
  result = main(*tiny_flags(data_dir, workdir, '--config.latent_dim=6',
                            '--config.num_train_steps=3'))
  assert_user_error(result, 'does not fit the configured model',
                    str(workdir / 'checkpoints'), 'latent_dim=10')
  assert sorted(os.listdir(workdir / 'checkpoints')) == before


def test_evaluate_of_a_damaged_checkpoint_names_it_and_those_that_restore(
    data_dir, trained, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(trained, workdir)
  (workdir / 'checkpoints' / '2' / 'state' / '_METADATA').write_text('')
  result = main(*tiny_flags(data_dir, workdir, '--mode=evaluate',
                            '--config.eval.metrics=("mig",)'))
  assert_user_error(result, f'The checkpoint {workdir / "checkpoints" / "2"} '
                    'does not restore', 'Steps that restore: [1]',
                    '--step=N')
