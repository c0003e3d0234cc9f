r"""Speed of the disentanglement metric suite.

  python -m benchmarks.metrics                                   # synthetic codes only
  python -m benchmarks.metrics --workdir=workdirs/capacity_quick \
      --config=configs/capacity.py:quick                         # + a trained model

1. Fixed synthetic codes: 10,000 train / 5,000 test points, 10 codes, 5
   factors (dSprites' factor sizes; codes = a noisy mix of the factors), the
   seconds of each code-based metric (MIG, modularity/explicitness, DCI, SAP).
2. With --workdir: the whole suite (`bvae_jax.metrics.suite`) on that run's
   latest checkpoint at disentanglement_lib's sample sizes, encoding and
   rendering included, and the seconds of each part.
The last line printed is one JSON object with all of it.
"""

import json
import os
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

_WORKDIR = flags.DEFINE_string('workdir', None, 'A trained run to evaluate.')
config_flags.DEFINE_config_file('config', None, 'The run\'s config file.')
_CPU_DEVICES = flags.DEFINE_integer('cpu_devices', 0, 'As in bvae_jax.main.')

NUM_TRAIN = 10_000
NUM_TEST = 5_000
NUM_CODES = 10
FACTOR_SIZES = (3, 6, 40, 32, 32)


def synthetic_codes(num_points, random_state):
  """(codes, factors): each factor read by one code, plus mixing and noise."""
  factors = np.stack([random_state.randint(size, size=num_points)
                      for size in FACTOR_SIZES], axis=1)
  scaled = factors / (np.array(FACTOR_SIZES) - 1.0)
  mixing = random_state.normal(size=(len(FACTOR_SIZES), NUM_CODES)) * 0.2
  mixing[np.arange(len(FACTOR_SIZES)), np.arange(len(FACTOR_SIZES))] = 1.0
  codes = scaled @ mixing + 0.05 * random_state.normal(
      size=(num_points, NUM_CODES))
  return codes.astype(np.float32), factors


def main(argv):
  del argv
  from bvae_jax.core import devices  # pylint: disable=g-import-not-at-top
  devices.configure_host_devices(_CPU_DEVICES.value, 64)
  from bvae_jax.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  from bvae_jax import config_defaults  # pylint: disable=g-import-not-at-top
  from bvae_jax.metrics import sampling  # pylint: disable=g-import-not-at-top
  from bvae_jax.metrics import suite  # pylint: disable=g-import-not-at-top
  random_state = np.random.RandomState(0)
  codes_train, factors_train = synthetic_codes(NUM_TRAIN, random_state)
  codes_test, factors_test = synthetic_codes(NUM_TEST, random_state)
  metrics, seconds = suite.run(
      suite.shared_code_metrics(), sampling.MetricInputs(
          None, None, codes_train, factors_train, codes_test, factors_test),
      config_defaults.base_config().eval)
  results = {'cpu_count': os.cpu_count(), 'synthetic': {
      name: {'seconds': round(seconds[name], 2), **metrics[name]}
      for name in metrics}}
  for name, values in results['synthetic'].items():
    print(f'synthetic {name}: {values}', flush=True)

  if _WORKDIR.value:
    setup = evaluate.prepare_evaluation(flags.FLAGS.config, _WORKDIR.value)
    dataset, step = setup.dataset, setup.step
    start = time.perf_counter()
    metrics, seconds, _ = suite.compute_suite(
        dataset.ground_truth(), setup.representation_fn, setup.config.eval)
    total = time.perf_counter() - start
    results['trained_model'] = {
        'workdir': _WORKDIR.value, 'step': step,
        'dataset': dataset.describe()['tfds_name'],
        'seconds': {k: round(v, 1) for k, v in seconds.items()},
        'total_seconds': round(total, 1), 'metrics': metrics}
    print(f'trained model, step {step}: {total:.1f} s in all; '
          f'{results["trained_model"]["seconds"]}', flush=True)
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
