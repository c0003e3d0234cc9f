r"""Entry point: parses flags and hands the config to training or evaluation.

This file is kept short on purpose (as in the Flax examples): the logic lives in
importable modules that tests and notebooks use directly.

  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run
  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run --mode=evaluate
  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep
  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep \
      --mode=evaluate --member='beta=5,seed=0'

A config with a `sweep` block (configs/sweep_*.py) trains all its members in
one process (bvae_jax/sweep.py). Multi-process jobs: see launch/README.md.
Any config field can be overridden, e.g. `--config.latent_dim=6`; a mistyped
field name fails (the config is locked).
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from bvae_jax import devices
from bvae_jax import evaluate
from bvae_jax import multihost
from bvae_jax import sweep
from bvae_jax import train
from bvae_jax.datasets import registry

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and figures.')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                  'train: train (or resume); evaluate: the metric suite on a '
                  'checkpoint of --workdir.')
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
flags.mark_flags_as_required(['config', 'workdir'])


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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = FLAGS.config
  # Both must precede the first JAX computation: the CPU device count is
  # fixed when the backend starts, and the distributed runtime must join first.
  devices.configure_host_devices(FLAGS.cpu_devices, config.batch_size)
  multihost.initialize(FLAGS.distributed, FLAGS.coordinator_address,
                       FLAGS.num_processes, FLAGS.process_id)
  logging.info('Config:\n%s', config)
  is_sweep = config.get('sweep') is not None
  if FLAGS.mode == 'evaluate':
    if is_sweep:
      _evaluate_sweep(config, FLAGS.workdir, FLAGS.step, FLAGS.member)
    else:
      evaluate.evaluate(config, FLAGS.workdir, FLAGS.step)
  elif is_sweep:
    sweep.train_sweep(config, FLAGS.workdir)
  else:
    train.train_and_evaluate(config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
