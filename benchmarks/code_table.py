r"""Speed of the metric suite's code table: rendering and encoding dSprites.

  python -m benchmarks.code_table --model=study50k_capacity_gamma100_s1 \
      --devices=1,2,4 --conv_impls=lax,matmul

The code table (bvae_jax/metrics/code_table.py) renders and encodes all
737,280 dSprites factor combinations once per evaluation; it is most of the
suite's time. This times, for a zoo model, the encoder as evaluation runs it
(`evaluate.make_representation_fn`, batches of 2,048) on the first
--combinations combinations, per device count (one child process each: JAX
fixes the CPU device count at start-up) and conv formulation, plus the
rendering of the same combinations. Each figure is the best of --repeats.
Also reported: the largest difference of each formulation's codes from the
first one's (evaluation uses 'lax', config.eval.conv_impl), and the predicted
seconds of a whole table, 737,280 / rate. The last line printed is a JSON
object.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import child_process

_MODEL = flags.DEFINE_string('model', 'study50k_capacity_gamma100_s1',
                             'Zoo model whose encoder is timed.')
_DEVICES = flags.DEFINE_list('devices', ['1', '2', '4'], 'CPU device counts.')
_CONV_IMPLS = flags.DEFINE_list('conv_impls', ['lax', 'matmul'],
                                'Conv formulations; the first is the reference.')
_COMBINATIONS = flags.DEFINE_integer('combinations', 16_384,
                                     'Combinations timed (from index 0).')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timed repeats; the best counts.')
_CHILD_OUT = flags.DEFINE_string('child_out', None,
                                 'Internal: time here, write codes under it.')


def _time_here(out_dir):
  """Times rendering and each formulation's encoder in this process."""
  from bvae_jax import experiment_config  # pylint: disable=g-import-not-at-top
  from bvae_jax import zoo
  from bvae_jax.datasets import registry
  from bvae_jax.evaluation import evaluate
  from bvae_jax.metrics import code_table
  import jax

  model = zoo.load(_MODEL.value)
  config = experiment_config.resolve(model.config)
  ground_truth = registry.open_dataset(
      config.dataset, config.dataset_source, config.data_dir).ground_truth()
  factors = code_table.all_factors(ground_truth, 0, _COMBINATIONS.value)
  probe = np.random.RandomState(0)
  render_seconds = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    observations = ground_truth.sample_observations_from_factors(factors, probe)
    render_seconds.append(time.perf_counter() - start)
  result = {'devices': jax.device_count(),
            'render_images_per_sec': round(len(factors) / min(render_seconds)),
            'encode_images_per_sec': {}}
  for impl in _CONV_IMPLS.value:
    representation_fn = evaluate.make_representation_fn(
        model.model.clone(conv_impl=impl), model.params,
        encode_batch_size=2048)
    representation_fn(observations[:2048])  # Compile.
    seconds = []
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      codes = representation_fn(observations)
      seconds.append(time.perf_counter() - start)
    np.save(os.path.join(out_dir, f'{impl}.npy'), codes)
    result['encode_images_per_sec'][impl] = round(len(codes) / min(seconds))
  print(json.dumps(result))


def main(argv):
  del argv
  if _CHILD_OUT.value:
    from bvae_jax.core import devices  # pylint: disable=g-import-not-at-top
    devices.configure_host_devices(int(_DEVICES.value[0]), 64)
    _time_here(_CHILD_OUT.value)
    return
  total = 737_280  # dSprites' factor combinations.
  results = []
  reference = None
  for count in _DEVICES.value:
    with tempfile.TemporaryDirectory() as out_dir:
      result = child_process.json_result(
          'benchmarks.code_table', f'--child_out={out_dir}',
          f'--devices={count}', f'--model={_MODEL.value}',
          f'--conv_impls={",".join(_CONV_IMPLS.value)}',
          f'--combinations={_COMBINATIONS.value}',
          f'--repeats={_REPEATS.value}')
      codes = {impl: np.load(os.path.join(out_dir, f'{impl}.npy'))
               for impl in _CONV_IMPLS.value}
    if reference is None:
      reference = codes[_CONV_IMPLS.value[0]]
    result['max_code_difference'] = {
        impl: float(np.abs(c - reference).max()) for impl, c in codes.items()}
    result['predicted_table_seconds'] = {
        impl: round(total / rate, 1)
        for impl, rate in result['encode_images_per_sec'].items()}
    print(f'{count} devices: {result}', flush=True)
    results.append(result)
  print(json.dumps({'model': _MODEL.value,
                    'combinations': _COMBINATIONS.value, 'runs': results}))


if __name__ == '__main__':
  app.run(main)
