r"""DCI with metrics/gradient_boosting.py's refit against sklearn's classifier.

  python -m benchmarks.dci_kernels --seeds=8
  NPY_DISABLE_CPU_FEATURES='X86_V4 AVX512_ICL AVX512_SPR' python -m benchmarks.dci_kernels --seeds=8

Five factors of 3, 6, 10, 10 and 10 values, each read by two nonlinear
features, mixed into 10 codes with noise; 1,000 training and 500 test points
per data set; `dci.dci` with `classifier='fast'` and `'sklearn'` on each, in
one process, so on the SIMD kernels numpy picks for this CPU (or those the
environment variable leaves it). Prints one JSON line per data set (both
results, their absolute differences, the seconds of each) and a last line
with the largest difference of each score and the kernels in use.
"""

import json
import time

from absl import app
from absl import flags
import numpy as np

_SEEDS = flags.DEFINE_integer('seeds', 8, 'Data sets (seeds 0, 1, ...).')

FACTOR_SIZES = (3, 6, 10, 10, 10)
NUM_CODES = 10


def mixed_codes(seed, num_train=1000, num_test=500):
  """(codes_train, factors_train, codes_test, factors_test) of data set `seed`."""
  rs = np.random.RandomState(seed)
  mixing = rs.randn(2 * len(FACTOR_SIZES), NUM_CODES)

  def sample(num):
    factors = np.stack([rs.randint(s, size=num) for s in FACTOR_SIZES], 1)
    features = np.concatenate(
        [np.stack([np.cos(2.1 * factors[:, j]), factors[:, j] / s], 1)
         for j, s in enumerate(FACTOR_SIZES)], 1)
    codes = features @ mixing + 0.3 * rs.randn(num, NUM_CODES)
    return codes.astype(np.float32), factors

  return (*sample(num_train), *sample(num_test))


def main(argv):
  del argv
  from bvae_jax.metrics import dci  # pylint: disable=g-import-not-at-top
  largest = {}
  for seed in range(_SEEDS.value):
    data = mixed_codes(seed)
    start = time.perf_counter()
    fast = dci.dci(*data, n_jobs=1)
    middle = time.perf_counter()
    reference = dci.dci(*data, n_jobs=1, classifier='sklearn')
    end = time.perf_counter()
    difference = {k: abs(fast[k] - reference[k]) for k in fast}
    for key, value in difference.items():
      largest[key] = max(largest.get(key, 0.0), value)
    print(json.dumps({'seed': seed, 'fast': fast, 'sklearn': reference,
                      'abs_difference': difference,
                      'seconds': {'fast': round(middle - start, 1),
                                  'sklearn': round(end - middle, 1)}}),
          flush=True)
  features = np._core._multiarray_umath.__cpu_features__  # pylint: disable=protected-access
  print(json.dumps({'largest_abs_difference': largest,
                    'avx512_kernels': bool(features.get('AVX512_SKX'))}))


if __name__ == '__main__':
  app.run(main)
