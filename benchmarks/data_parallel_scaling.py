r"""Images/s of the train step on 1, 2, 4, 8 devices (data parallelism overhead).

  python -m benchmarks.data_parallel_scaling --devices=1,2,4,8 --seconds=10

Each device count needs its own process (JAX fixes the CPU device count at
start-up), so this runs `python -m benchmarks.train_step --cpu_devices=N` once
per count and pass, alternating the order between passes (forward, then
backward) so that a drift in the machine's load affects every count alike.
On a 2-core CPU, 2 devices use both cores and more devices cannot add speed:
the figures for 4 and 8 show what splitting the batch further costs. The last
line printed is a JSON object.
"""

import json
import os

from absl import app
from absl import flags

from benchmarks import child_process

_DEVICES = flags.DEFINE_list('devices', ['1', '2', '4', '8'], 'Device counts.')
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Timed seconds per run.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Global batch size.')
_PASSES = flags.DEFINE_integer('passes', 2, 'Passes over the device counts.')


def images_per_second(devices: int) -> float:
  env = dict(os.environ)
  env['XLA_FLAGS'] = ' '.join(
      f for f in env.get('XLA_FLAGS', '').split()
      if not f.startswith('--xla_force_host_platform_device_count'))
  return child_process.json_result(
      'benchmarks.train_step', f'--cpu_devices={devices}',
      f'--seconds={_SECONDS.value}', f'--batch_size={_BATCH_SIZE.value}',
      env=env)['images_per_sec']


def main(argv):
  del argv
  counts = [int(n) for n in _DEVICES.value]
  rates = {n: [] for n in counts}
  for index in range(_PASSES.value):
    for n in (counts if index % 2 == 0 else counts[::-1]):
      rates[n].append(images_per_second(n))
      print(f'{n} devices: {rates[n][-1]:.1f} images/s', flush=True)
  mean = {n: sum(r) / len(r) for n, r in rates.items()}
  print(json.dumps({
      'batch_size': _BATCH_SIZE.value, 'seconds': _SECONDS.value,
      'images_per_sec': {n: round(v, 1) for n, v in mean.items()},
      'runs': rates,
      'ratio_to_first': {n: round(v / mean[counts[0]], 3)
                         for n, v in mean.items()}}))


if __name__ == '__main__':
  app.run(main)
