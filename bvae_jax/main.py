r"""Entry point: parses flags and hands the config to `train.train_and_evaluate`.

This file is kept short on purpose (as in the Flax examples): the logic lives in
importable modules that tests and notebooks use directly.

  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run
  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/run --mode=evaluate

Any config field can be overridden, e.g. `--config.latent_dim=6`; a mistyped
field name fails (the config is locked).
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from bvae_jax import devices
from bvae_jax import evaluate
from bvae_jax import train

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and figures.')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                  'train: train (or resume); evaluate: the metric suite on a '
                  'checkpoint of --workdir.')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: latest).')
flags.DEFINE_integer(
    'cpu_devices', 0,
    'JAX devices to split the CPU into (one per core runs convolutions on every '
    'core). 0: the largest count ≤ the usable cores that divides the batch '
    'size; -1: leave to JAX/XLA_FLAGS. No effect on GPU/TPU training.')
config_flags.DEFINE_config_file(
    'config', None, 'Training configuration file, e.g. configs/capacity.py:quick.',
    lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = FLAGS.config
  # Must precede the first JAX computation: it fixes the CPU device count.
  devices.configure_host_devices(FLAGS.cpu_devices, config.batch_size)
  logging.info('Config:\n%s', config)
  if FLAGS.mode == 'evaluate':
    evaluate.evaluate(config, FLAGS.workdir, FLAGS.step)
  else:
    train.train_and_evaluate(config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
