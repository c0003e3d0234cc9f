r"""Speed of the full training step (forward, loss, backward, Adam), fp32.

  python -m benchmarks.train_step --batch_size=64 --seconds=20
  python -m benchmarks.train_step --conv_impl=matmul,space_to_depth,lax   # side by side
  python -m benchmarks.train_step --objective=capacity,beta_tcvae,dip_vae,factor_vae

Times `step_lib.make_train_step` of configs/capacity.py (the model that training
uses, data-parallel over the mesh that `--cpu_devices` sets up exactly as
`bvae_jax.main` does) on a fixed device-resident batch of binary images, after
compilation and warm-up. With several `--conv_impl` or `--objective` values
(the objective's defaults from `config_defaults.set_objective`), each is
timed in the same process, interleaved in rounds, so their ratio is robust to
the machine's load. The last line printed is a JSON object.
"""

import itertools
import json
import time

from absl import app
from absl import flags
import jax

from benchmarks import steps as step_builders
from bvae_jax.core import devices
from bvae_jax.models import conv_layers
from bvae_jax.training import run_ahead

_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Global batch size.')
_SECONDS = flags.DEFINE_float('seconds', 20.0, 'Timed seconds per implementation.')
_CONV_IMPL = flags.DEFINE_list('conv_impl', [conv_layers.DEFAULT_CONV_IMPL],
                               'Strided-conv formulations to time.')
_OBJECTIVE = flags.DEFINE_list('objective', ['capacity'],
                               'Objectives (bvae_jax/objectives) to time.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'As in bvae_jax.main: 0 = up to two per core, dividing the batch.')
_ROUNDS = 4  # Interleaved timing rounds per implementation.


def timed_steps(step_fn, state, images, noise_key, seconds):
  """Runs steps for ~`seconds`; returns (state, steps, elapsed).

  Steps are dispatched a few ahead of the device, as the training loop does
  (run_ahead.py).
  """
  in_flight = run_ahead.RunAhead()
  steps, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    state, metrics = step_fn(state, images, noise_key)
    in_flight.admit(metrics['loss'])
    steps += 1
  in_flight.drain()
  return state, steps, time.perf_counter() - start


def _label(conv_impl: str, objective: str) -> str:
  """The result's key: the conv formulation, the objective, or both."""
  several_impls = len(_CONV_IMPL.value) > 1
  several_objectives = len(_OBJECTIVE.value) > 1
  if several_objectives and several_impls:
    return f'{conv_impl}/{objective}'
  return objective if several_objectives else conv_impl


def main(argv):
  del argv
  batch_size = _BATCH_SIZE.value
  devices.configure_host_devices(_CPU_DEVICES.value, batch_size)
  devices.check_batch_divisible(batch_size, jax.device_count())
  runs = {}
  for conv_impl, objective in itertools.product(_CONV_IMPL.value,
                                                _OBJECTIVE.value):
    step_fn, state, images, noise_key = step_builders.build_train_step(
        conv_impl, batch_size, objective)
    start = time.perf_counter()
    state, metrics = step_fn(state, images, noise_key)
    jax.block_until_ready(metrics['loss'])
    compile_seconds = time.perf_counter() - start
    state, _, _ = timed_steps(step_fn, state, images, noise_key, 2.0)  # Warm-up.
    runs[_label(conv_impl, objective)] = dict(
        args=[step_fn, state, images, noise_key], steps=0, seconds=0.0,
        compile_seconds=compile_seconds)
  for _ in range(_ROUNDS):
    for run in runs.values():
      state, steps, elapsed = timed_steps(*run['args'],
                                          _SECONDS.value / _ROUNDS)
      run['args'][1] = state
      run['steps'] += steps
      run['seconds'] += elapsed
  results = {}
  for label, run in runs.items():
    steps_per_sec = run['steps'] / run['seconds']
    results[label] = dict(steps_per_sec=round(steps_per_sec, 2),
                          images_per_sec=round(steps_per_sec * batch_size, 1),
                          compile_seconds=round(run['compile_seconds'], 1))
    print(f'{label}: {results[label]}')
  first = next(iter(results))
  summary = dict(results[first], batch_size=batch_size,
                 conv_impl=_CONV_IMPL.value[0],
                 device_kind=jax.devices()[0].device_kind,
                 num_devices=jax.device_count(), backend=jax.default_backend())
  if len(_OBJECTIVE.value) > 1 or _OBJECTIVE.value[0] != 'capacity':
    summary['objective'] = _OBJECTIVE.value[0]
  if len(results) > 1:
    by = 'by_conv_impl' if len(_OBJECTIVE.value) == 1 else 'by_run'
    summary[by] = results
    summary['ratios_to_first'] = {
        label: round(r['images_per_sec'] / results[first]['images_per_sec'], 3)
        for label, r in results.items()}
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
