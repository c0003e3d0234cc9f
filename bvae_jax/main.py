r"""Entry point: parses flags and hands the config to training or evaluation.

This file is kept short on purpose (as in the Flax examples): the logic lives in
importable modules that tests and notebooks use directly.

  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run
  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run --mode=evaluate
  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep
  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep \
      --mode=evaluate --member='beta=5,seed=0'

A finished run's results folder and zoo model (bvae_jax/evaluation/study_results.py),
and the metric suite on a zoo model (bvae_jax/zoo.py; no --config needed):

  python -m bvae_jax.main --config=configs/study_50k.py:method=beta_vae,seed=0 \
      --workdir=/tmp/study/beta_vae_s0 --mode=publish \
      --results_dir=docs/results/study_50k/beta_vae_s0 --zoo=study50k_beta_vae_s0
  python -m bvae_jax.main --mode=evaluate --zoo=study50k_beta_vae_s0 --workdir=/tmp/zoo_eval

A sweep trained as seed shards, merged into one (bvae_jax/sweeps/sweep_merge.py),
and UDR of a sweep's members (bvae_jax/sweeps/udr_selection.py):

  python -m bvae_jax.main --config=configs/sweep_beta.py --workdir=DIR/all \
      --mode=merge --parts=DIR/seed0,DIR/seed1,DIR/seed2
  python -m bvae_jax.main --config=configs/sweep_beta.py --workdir=DIR/all --mode=udr

A config with a `sweep` block (configs/sweep_*.py) trains all its members in
one process (bvae_jax/sweeps/sweep.py); a config whose `runner` names a
reproduction (configs/burgess_fig3.py, configs/compare_methods.py, …) runs
that module's `run(config, workdir)`. Multi-process jobs: see launch/README.md.

Errors the user can act on (a bad config value, a workdir that is a file, no
or a damaged checkpoint, missing data) print one line and exit with status
1; --traceback shows where they were raised. Other libraries' INFO lines
(Orbax, TFDS, JAX) stay off the console unless --verbose.
Any config field can be overridden, e.g. `--config.latent_dim=6`; a mistyped
field name fails (the config is locked).
"""

import importlib
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from bvae_jax.core import checkpointing
from bvae_jax.core import devices
from bvae_jax.core import metric_logging
from bvae_jax.core import multihost
from bvae_jax.core import run_records
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import registry
from bvae_jax.evaluation import evaluate
from bvae_jax.evaluation import study_results
from bvae_jax.metrics import udr
from bvae_jax import experiment_config
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_merge
from bvae_jax.sweeps import udr_selection
from bvae_jax.training import loop
from bvae_jax.training import train
from bvae_jax import zoo

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and figures.')
flags.DEFINE_enum('mode', 'train',
                  ['train', 'evaluate', 'publish', 'merge', 'udr'],
                  'train: train (or resume); evaluate: the metric suite on a '
                  'checkpoint of --workdir (or on --zoo); publish: write a '
                  'finished run\'s --results_dir (and --zoo model); merge: '
                  'a sweep\'s seed shards (--parts) into the new --workdir; '
                  'udr: UDR of a trained sweep\'s members.')
flags.DEFINE_list('parts', None,
                  'merge: the finished seed shards\' workdirs '
                  '(bvae_jax/sweeps/sweep_merge.py).')
flags.DEFINE_integer('udr_num_points', udr_selection.DEFAULT_NUM_POINTS,
                     'udr: observations every member encodes.')
flags.DEFINE_enum('udr_correlation', 'lasso', list(udr.CORRELATIONS),
                  'udr: how the latents of two seeds are matched.')
flags.DEFINE_string('zoo', None,
                    'evaluate: the zoo model to evaluate (bvae_jax/zoo.py; '
                    'its card gives the config); publish: the name to publish '
                    'the final parameters under in zoo/.')
flags.DEFINE_string('results_dir', None,
                    'publish: the results folder to write, e.g. '
                    'docs/results/study_50k/beta_vae_s0.')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: latest).')
flags.DEFINE_string('member', None,
                    'Sweeps: the member (index or name, see '
                    'sweep_members.json) to evaluate (default: every member) '
                    'or, with --mode=publish, to publish (required).')
flags.DEFINE_integer(
    'cpu_devices', 0,
    'JAX devices to split the CPU into (XLA:CPU runs a device\'s ops one '
    'after another, so several devices keep every core busy). 0: the largest '
    'count ≤ 2 per usable core that divides the batch size; -1: leave to '
    'JAX/XLA_FLAGS. No effect on GPU/TPU training.')
flags.DEFINE_enum('distributed', 'auto', list(multihost.DISTRIBUTED_MODES),
                  'Join a multi-process job with jax.distributed.initialize: '
                  'on, off, or auto (when a coordinator is given or under a '
                  'multi-task srun).')
flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0 (env JAX_COORDINATOR_ADDRESS).')
flags.DEFINE_integer('num_processes', None,
                     'Processes in the job (env JAX_NUM_PROCESSES).')
flags.DEFINE_integer('process_id', None,
                     'This process, in [0, num_processes) (env JAX_PROCESS_ID).')
flags.DEFINE_bool('verbose', False,
                  'Show other libraries\' INFO lines (Orbax, TFDS, JAX) and '
                  'the whole config on the console.')
flags.DEFINE_bool('traceback', False,
                  'On an error the user can act on, show the traceback too.')
config_flags.DEFINE_config_file(
    'config', None, 'Training configuration file, e.g. configs/capacity.py:quick.',
    lock_config=True)
flags.mark_flags_as_required(['workdir'])

# config.runner -> the module whose run(config, workdir) runs it; 'train' is
# one run or, with a `sweep` block, a sweep (bvae_jax/training/train.py, sweep.py).
RUNNERS = {
    'train': None,
    'beta_sweep_study': 'bvae_jax.reproductions.beta_sweep_study',
    'burgess_fig2': 'bvae_jax.reproductions.burgess_fig2',
    'burgess_fig3': 'bvae_jax.reproductions.burgess_fig3',
    'burgess_fig4a': 'bvae_jax.reproductions.burgess_fig4a',
    'method_comparison': 'bvae_jax.reproductions.method_comparison',
}

# The errors a person can act on: the message names the field, file or step
# and says what to do, so the traceback only hides it (--traceback shows it).
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError,
               FloatingPointError, checkpointing.DamagedCheckpointsError,
               checkpointing.CheckpointSaveError,
               run_records.WorkdirInUseError,
               dataset_spec.DatasetUnavailableError,
               dataset_spec.SourceUnavailableError)


def _evaluate_sweep(config, workdir, step, member):
  # By name: an index given on the command line names the same folder.
  members = ([sweep.find_member(config, member).name] if member is not None
             else [m.name for m in sweep.validate_sweep_config(config)])
  dataset = None  # Members share the data: open it, and its ground truth, once.
  for name in members:
    solo, params, restored_step = sweep.restore_member(config, workdir, name,
                                                       step)
    dataset = dataset or registry.open_dataset(
        solo.dataset, solo.dataset_source, solo.data_dir)
    logging.info('Evaluating sweep member %s at step %d.', name, restored_step)
    evaluate.evaluate(solo, sweep.member_workdir(workdir, name),
                      restored_step, params=params, dataset=dataset)


def _evaluate_zoo_model(name, workdir):
  loaded = zoo.load(name)
  step = loaded.card['steps']
  logging.info('Evaluating zoo model %s (step %d) into %s.', name, step,
               workdir)
  evaluate.evaluate(loaded.config, workdir, step, params=loaded.params)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.verbose:
    metric_logging.quiet_library_logs()
  try:
    _run(FLAGS.config, FLAGS.workdir)
  except loop.Preempted as preempted:
    logging.warning('%s Exit status %d: preempted, resumable.', preempted,
                    loop.PREEMPTED_EXIT_STATUS)
    sys.exit(loop.PREEMPTED_EXIT_STATUS)
  except USER_ERRORS as error:
    if FLAGS.traceback:
      raise
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f'Error ({type(error).__name__}): {message}\n'
          '(--traceback shows where it was raised.)', file=sys.stderr)
    sys.exit(1)


def _run(config, workdir: str) -> None:
  """Runs the --mode on the config (or zoo model); see the flags."""
  run_records.check_workdir(workdir)
  if FLAGS.mode == 'evaluate' and FLAGS.zoo:
    devices.configure_host_devices(FLAGS.cpu_devices, 64)
    with run_records.workdir_lock(workdir):
      _evaluate_zoo_model(FLAGS.zoo, workdir)
    return
  if config is None:
    raise app.UsageError('--config is required (except for --mode=evaluate '
                         '--zoo=NAME).')
  runner = config.get('runner', 'train')
  if runner not in RUNNERS:
    raise ValueError(f'config.runner must be one of {sorted(RUNNERS)}, got '
                     f'{runner!r}')
  if 'objective' in config:  # A VAE's config (not the Fig. 3 generator's).
    config = experiment_config.resolve(config)
  # Both must precede the first JAX computation: the CPU device count is
  # fixed when the backend starts, and the distributed runtime must join first.
  devices.configure_host_devices(FLAGS.cpu_devices, config.batch_size)
  multihost.initialize(FLAGS.distributed, FLAGS.coordinator_address,
                       FLAGS.num_processes, FLAGS.process_id)
  if FLAGS.verbose:
    logging.info('Config:\n%s', config)
  else:
    logging.info('Config %s (runner %s, objective %s, data set %s, %d steps, '
                 'batch %d); every field goes to %s.',
                 FLAGS['config'].config_filename, runner,
                 config.get('objective', '—'), config.get('dataset', 'dsprites'),
                 config.num_train_steps, config.batch_size,
                 os.path.join(workdir, 'config.json'))
  if FLAGS.mode == 'merge':
    # No lock: the merge builds the sweep in a staging folder beside --workdir
    # and renames it into place, so --workdir must stay missing or empty.
    _merge(config, workdir)
    return
  # One writer per workdir: refused at once if another run holds it.
  with run_records.workdir_lock(workdir, enabled=jax.process_index() == 0,
                                create=FLAGS.mode == 'train'):
    _dispatch(config, workdir, runner)


def _dispatch(config, workdir: str, runner: str) -> None:
  """Runs --mode on the resolved config, the workdir locked."""
  is_sweep = config.get('sweep') is not None
  if FLAGS.mode == 'publish':
    if not FLAGS.results_dir:
      raise app.UsageError('--mode=publish needs --results_dir.')
    study_results.publish(config, workdir, FLAGS.results_dir, FLAGS.zoo,
                          command=' '.join(['python -m bvae_jax.main'] +
                                           _training_flags(sys.argv[1:])),
                          member=FLAGS.member)
  elif FLAGS.mode == 'udr':
    summary = udr_selection.udr_of_sweep(
        config, workdir, num_points=FLAGS.udr_num_points,
        correlation=FLAGS.udr_correlation, step=FLAGS.step)
    logging.info('UDR per member: %s; rank correlation with the metrics: %s. '
                 'Written to %s.', summary['members'],
                 summary['rank_correlation'],
                 os.path.join(workdir, 'udr.json'))
  elif FLAGS.mode == 'evaluate':
    if is_sweep:
      _evaluate_sweep(config, workdir, FLAGS.step, FLAGS.member)
    else:
      evaluate.evaluate(config, workdir, FLAGS.step)
  elif RUNNERS[runner] is not None:
    importlib.import_module(RUNNERS[runner]).run(config, workdir)
  elif is_sweep:
    sweep.train_sweep(config, workdir)
  else:
    train.train_and_evaluate(config, workdir)


def _merge(config, workdir: str) -> None:
  if not FLAGS.parts:
    raise app.UsageError('--mode=merge needs --parts=DIR,DIR,….')
  rows = sweep_merge.merge_sweeps(config, workdir, FLAGS.parts)
  logging.info('%d members merged into %s; see %s.', len(rows), workdir,
               os.path.join(workdir, 'sweep_results.md'))


def _training_flags(args):
  """The flags of a publish command that also make up its training command."""
  dropped = ('--mode', '--results_dir', '--zoo', '--member', '--verbose',
             '--traceback')
  return [('--workdir=DIR' if arg.startswith('--workdir') else arg)
          for arg in args if not arg.startswith(dropped)]


def parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags; a config file that fails to load, or a --config.X
  override of no field, is one line, not a traceback (unless --traceback)."""
  try:
    return FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError,
          ValueError) as error:
    if '--traceback' in argv:
      raise
    text = str(error.args[0] if error.args else error)
    if 'Traceback (most recent call last)' in text:
      lines = [line.strip() for line in text.splitlines() if line.strip()]
      text = f'{lines[0].rstrip(":")}: {lines[-1]}'
    if isinstance(error, (AttributeError, KeyError)):
      # ml_collections' message for an override of a field the config lacks
      # ('gama'\nDid you mean "gamma" …), from a locked config.
      name = re.search(r'\w+', text).group(0)
      hint = text.replace('\\n', '\n').partition('\n')[2].strip('\'" ')
      flag = next((arg.split('=')[0] for arg in argv
                   if arg.split('=')[0].endswith(f'.{name}')), name)
      text = f'{flag}: the config has no field {name!r}. {hint}'.strip()
    print(f'Error: {text}\n(--traceback shows where it was raised; '
          '--helpshort lists the flags.)', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
