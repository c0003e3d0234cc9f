r"""How far training runs ahead of the device, and what bounding it costs.

  python -m benchmarks.run_ahead --cpu_devices=2 --max_in_flight=1,2,4,8 --seconds=40

Builds the training step and the input pipeline exactly as
`train.train_and_evaluate` does (configs/capacity.py, real batches from the
configured data set), then

1. *Unbounded*: dispatches steps without waiting for any, as the training loop
   did between two log steps before the run-ahead bound, and records after each
   dispatch how many steps are unfinished. It stops at `--probe_depth` (kept
   below XLA:CPU's 32 in-flight computations per device, where the loop
   deadlocks) and reports how fast the queue grows.
2. *Bounded*: for each `--max_in_flight`, the images/s of the loop with
   `run_ahead.RunAhead`, interleaved in rounds so that the ratios are robust
   to the machine's load.

The last line printed is a JSON object.
"""

import json
import time

from absl import app
from absl import flags
import jax

from bvae_jax.core import devices
from bvae_jax.core import run_records
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import input_pipeline
from bvae_jax.training import run_ahead
import configs.capacity

_CONFIG_ARG = flags.DEFINE_string('config_arg', None,
                                  "configs/capacity.py's argument, e.g. 'quick'.")
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'As in bvae_jax.main: 0 = up to two per core, dividing the batch.')
_MAX_IN_FLIGHT = flags.DEFINE_list('max_in_flight', ['1', '2', '4', '8'],
                                   'Run-ahead bounds to time.')
_SECONDS = flags.DEFINE_float('seconds', 40.0, 'Timed seconds per bound.')
_PROBE_DEPTH = flags.DEFINE_integer(
    'probe_depth', 24, 'Unbounded probe: stop at this many unfinished steps.')
_ROUNDS = 4


class Dispatcher:
  """The training loop's dispatch path: batch, global array, step."""

  def __init__(self, config):
    dataset, self.config = run_records.open_training_data(config)
    mesh = devices.create_mesh()
    model = step_lib.create_model(self.config)
    self.state = step_lib.initial_train_state(
        model, mesh, seed=self.config.seed,
        objective_name=self.config.objective)
    self._step_fn = step_lib.make_train_step(self.config, model, mesh)
    _, self._noise_key = step_lib.rng_streams(self.config.seed)
    self._sharding = devices.batch_sharded(mesh)
    self._batches = input_pipeline.create_train_iterator(
        dataset, **input_pipeline.batch_order(self.config))

  def dispatch(self):
    """Dispatches one step; returns its loss (not waited on)."""
    images = jax.make_array_from_process_local_data(
        self._sharding, next(self._batches)['image'])
    self.state, metrics = self._step_fn(self.state, images, self._noise_key)
    return metrics['loss']


def probe_unbounded(dispatcher, probe_depth):
  """Dispatches without waiting until `probe_depth` steps are unfinished."""
  unfinished, trace = [], []
  start = time.perf_counter()
  while True:
    unfinished.append(dispatcher.dispatch())
    unfinished = [loss for loss in unfinished if not loss.is_ready()]
    trace.append((time.perf_counter() - start, len(unfinished)))
    if len(unfinished) >= probe_depth or len(trace) >= 2000:
      break
  jax.block_until_ready(unfinished)
  elapsed = time.perf_counter() - start
  steps = len(trace)
  return dict(steps_dispatched=steps, depth_reached=trace[-1][1],
              seconds_to_depth=round(trace[-1][0], 2),
              dispatch_steps_per_sec=round(steps / trace[-1][0], 2),
              device_steps_per_sec=round(steps / elapsed, 2),
              depth_every_10_steps=[d for _, d in trace[9::10]])


def timed(dispatcher, max_in_flight, seconds):
  """Steps and seconds of the bounded loop over ~`seconds`."""
  window = run_ahead.RunAhead(max_in_flight)
  steps, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    window.admit(dispatcher.dispatch())
    steps += 1
  window.drain()
  return steps, time.perf_counter() - start, window.deepest


def main(argv):
  del argv
  config = configs.capacity.get_config(_CONFIG_ARG.value)
  devices.configure_host_devices(_CPU_DEVICES.value, config.batch_size)
  dispatcher = Dispatcher(config)
  jax.block_until_ready(dispatcher.dispatch())  # Compile.
  timed(dispatcher, 2, 3.0)  # Warm-up.
  probe = probe_unbounded(dispatcher, _PROBE_DEPTH.value)
  print(f'unbounded: {probe}', flush=True)

  bounds = [int(k) for k in _MAX_IN_FLIGHT.value]
  totals = {k: [0, 0.0, 0] for k in bounds}
  for _ in range(_ROUNDS):
    for k in bounds:
      steps, seconds, deepest = timed(dispatcher, k, _SECONDS.value / _ROUNDS)
      totals[k][0] += steps
      totals[k][1] += seconds
      totals[k][2] = max(totals[k][2], deepest)
  batch_size = dispatcher.config.batch_size
  bounded = {k: dict(images_per_sec=round(s / t * batch_size, 1), deepest=d)
             for k, (s, t, d) in totals.items()}
  for k, result in bounded.items():
    print(f'max_in_flight={k}: {result}')
  first = bounds[0]
  print(json.dumps(dict(
      num_devices=jax.device_count(), batch_size=batch_size,
      dataset=dispatcher.config.dataset, unbounded=probe, bounded=bounded,
      ratios_to_first={k: round(r['images_per_sec'] /
                                bounded[first]['images_per_sec'], 3)
                       for k, r in bounded.items()})))


if __name__ == '__main__':
  app.run(main)
