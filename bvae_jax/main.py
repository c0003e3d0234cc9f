r"""Entry point: parses flags and hands the config to training or evaluation.

This file is kept short on purpose (as in the Flax examples): the logic lives in
importable modules that tests and notebooks use directly.

  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run
  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run --mode=evaluate
  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep
  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep \
      --mode=evaluate --member='beta=5,seed=0'

A finished run's results folder and zoo model (bvae_jax/study_results.py),
and the metric suite on a zoo model (bvae_jax/zoo.py; no --config needed):

  python -m bvae_jax.main --config=configs/study_50k.py:method=beta_vae,seed=0 \
      --workdir=/tmp/study/beta_vae_s0 --mode=publish \
      --results_dir=docs/results/study_50k/beta_vae_s0 --zoo=study50k_beta_vae_s0
  python -m bvae_jax.main --mode=evaluate --zoo=study50k_beta_vae_s0 --workdir=/tmp/zoo_eval

A config with a `sweep` block (configs/sweep_*.py) trains all its members in
one process (bvae_jax/sweep.py). Multi-process jobs: see launch/README.md.
Any config field can be overridden, e.g. `--config.latent_dim=6`; a mistyped
field name fails (the config is locked).
"""

import os

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from bvae_jax import devices
from bvae_jax import evaluate
from bvae_jax import multihost
from bvae_jax import study_results
from bvae_jax import sweep
from bvae_jax import train
from bvae_jax import zoo
from bvae_jax.datasets import registry

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and figures.')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate', 'publish'],
                  'train: train (or resume); evaluate: the metric suite on a '
                  'checkpoint of --workdir (or on --zoo); publish: write a '
                  'finished run\'s --results_dir (and --zoo model).')
flags.DEFINE_string('zoo', None,
                    'evaluate: the zoo model to evaluate (bvae_jax/zoo.py; '
                    'its card gives the config); publish: the name to publish '
                    'the final parameters under in zoo/.')
flags.DEFINE_string('results_dir', None,
                    'publish: the results folder to write, e.g. '
                    'docs/results/study_50k/beta_vae_s0.')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: latest).')
flags.DEFINE_string('member', None,
                    'Sweeps, --mode=evaluate: the member (index or name, see '
                    'sweep_members.json) to evaluate; default: every member.')
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
config_flags.DEFINE_config_file(
    'config', None, 'Training configuration file, e.g. configs/capacity.py:quick.',
    lock_config=True)
flags.mark_flags_as_required(['workdir'])


def _evaluate_sweep(config, workdir, step, member):
  members = ([member] if member is not None else
             [m.name for m in sweep.validate_sweep_config(config)])
  dataset = None  # Members share the data: open it, and its ground truth, once.
  for name in members:
    solo, params, restored_step = sweep.restore_member(config, workdir, name,
                                                       step)
    dataset = dataset or registry.open_dataset(solo)
    logging.info('Evaluating sweep member %s at step %d.', name, restored_step)
    evaluate.evaluate(solo, os.path.join(workdir, sweep.MEMBERS_DIR, name),
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
  if FLAGS.mode == 'evaluate' and FLAGS.zoo:
    devices.configure_host_devices(FLAGS.cpu_devices, 64)
    _evaluate_zoo_model(FLAGS.zoo, FLAGS.workdir)
    return
  config = FLAGS.config
  if config is None:
    raise app.UsageError('--config is required (except for --mode=evaluate '
                         '--zoo=NAME).')
  # Both must precede the first JAX computation: the CPU device count is
  # fixed when the backend starts, and the distributed runtime must join first.
  devices.configure_host_devices(FLAGS.cpu_devices, config.batch_size)
  multihost.initialize(FLAGS.distributed, FLAGS.coordinator_address,
                       FLAGS.num_processes, FLAGS.process_id)
  logging.info('Config:\n%s', config)
  is_sweep = config.get('sweep') is not None
  if FLAGS.mode == 'publish':
    if not FLAGS.results_dir:
      raise app.UsageError('--mode=publish needs --results_dir.')
    study_results.publish(config, FLAGS.workdir, FLAGS.results_dir, FLAGS.zoo,
                          command=' '.join(['python -m bvae_jax.main'] +
                                           _training_flags(sys.argv[1:])))
  elif FLAGS.mode == 'evaluate':
    if is_sweep:
      _evaluate_sweep(config, FLAGS.workdir, FLAGS.step, FLAGS.member)
    else:
      evaluate.evaluate(config, FLAGS.workdir, FLAGS.step)
  elif is_sweep:
    sweep.train_sweep(config, FLAGS.workdir)
  else:
    train.train_and_evaluate(config, FLAGS.workdir)


def _training_flags(args):
  """The flags of a publish command that also make up its training command."""
  dropped = ('--mode', '--results_dir', '--zoo')
  return [('--workdir=DIR' if arg.startswith('--workdir') else arg)
          for arg in args if not arg.startswith(dropped)]


if __name__ == '__main__':
  app.run(main)
