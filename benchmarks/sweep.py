r"""Speed of a vmapped sweep against training its members one after another.

  python -m benchmarks.sweep --members=8 --seconds=20
  python -m benchmarks.sweep --members=8 --member_devices=1,2 --shared_batches=true,false
  python -m benchmarks.sweep --members=8 --member_layouts=vmap,map,loop

Times, in one process and interleaved in rounds (so the ratio is robust to the
machine's load):
  * single: `step_lib.make_train_step` of configs/capacity.py, one model,
    data-parallel over all devices as `bvae_jax.main` runs it;
  * sweep: `sweep.setup_sweep`'s step training --members models (seeds 0..M-1)
    at once, for each --member_devices × --shared_batches × --member_layouts
    layout ('auto': the layout `sweep` picks for this backend).

Reported per layout: member-images/s (members × batch × steps/s) and its ratio
to the single model's images/s, i.e. how much faster the sweep is than running
the members one after another (≥ 1: the sweep is not slower), over all rounds
and as the median of the rounds' ratios (the steadier figure on a machine
whose speed drifts; the best layout is chosen by it). The last line printed
is a JSON object.
"""

import itertools
import json
import time

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import steps as step_builders
from bvae_jax.core import devices
from bvae_jax.sweeps import sweep
from bvae_jax.training import run_ahead

_MEMBERS = flags.DEFINE_integer('members', 8, 'Models in the sweep.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Batch size per member.')
_SECONDS = flags.DEFINE_float('seconds', 20.0, 'Timed seconds per variant.')
_MEMBER_DEVICES = flags.DEFINE_list(
    'member_devices', ['0'], 'Devices along the members axis (0: automatic).')
_SHARED = flags.DEFINE_list('shared_batches', ['true'],
                            'Members share batches: true, false or both.')
_MEMBER_LAYOUTS = flags.DEFINE_list(
    'member_layouts', ['auto'],
    'How the members run: vmap, map, loop or auto (the sweep default).')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'As in bvae_jax.main: 0 = up to two per core, dividing the batch.')
_CONV_IMPL = flags.DEFINE_string('conv_impl', 'matmul',
                                 'Strided-conv formulation of every model.')
_ROUNDS = flags.DEFINE_integer(
    'rounds', 4, 'Rounds; each times every variant for seconds/rounds, in '
    'turn, so a round\'s ratio compares variants timed minutes apart at most.')


def _timed(step_fn, state, args, seconds):
  in_flight = run_ahead.RunAhead()  # As the training loops run.
  steps, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    state, metrics = step_fn(state, *args)
    in_flight.admit(sweep.last_loss(metrics))  # Single model's too.
    steps += 1
  in_flight.drain()
  return state, steps, time.perf_counter() - start


def main(argv):
  del argv
  batch_size, members = _BATCH_SIZE.value, _MEMBERS.value
  devices.configure_host_devices(_CPU_DEVICES.value, batch_size)
  runs = {}
  step_fn, state, images, noise_key = step_builders.build_train_step(
      _CONV_IMPL.value, batch_size)
  runs['single'] = dict(fn=step_fn, state=state, args=(images, noise_key),
                        images_per_step=batch_size)
  for member_devices, shared, layout in itertools.product(
      _MEMBER_DEVICES.value, _SHARED.value, _MEMBER_LAYOUTS.value):
    shared = shared.lower() in ('1', 'true', 'yes')
    step_fn, state, images, mesh, layout = step_builders.build_sweep_step(
        members, batch_size, int(member_devices), shared, _CONV_IMPL.value,
        layout)
    name = (f'sweep(mesh={mesh["members"]}x{mesh["data"]},'
            f'{"shared" if shared else "own"} batches,{layout})')
    runs[name] = dict(fn=step_fn, state=state, args=(images,),
                      images_per_step=batch_size * members)
  for run in runs.values():  # Compile and warm up.
    start = time.perf_counter()
    run['state'], _, _ = _timed(run['fn'], run['state'], run['args'], 2.0)
    run.update(steps=0, seconds=0.0, round_rates=[],
               warmup_seconds=time.perf_counter() - start)
  for _ in range(_ROUNDS.value):
    for run in runs.values():
      run['state'], steps, elapsed = _timed(run['fn'], run['state'],
                                            run['args'],
                                            _SECONDS.value / _ROUNDS.value)
      run['steps'] += steps
      run['seconds'] += elapsed
      run['round_rates'].append(steps / elapsed * run['images_per_step'])
  single = runs['single']['steps'] / runs['single']['seconds'] * batch_size
  results = {}
  for name, run in runs.items():
    rate = run['steps'] / run['seconds'] * run['images_per_step']
    # The machine's speed drifts between rounds; the ratio within each round
    # (against that round's single model) is steadier than the totals'.
    round_ratios = np.array(run['round_rates']) / np.array(
        runs['single']['round_rates'])
    results[name] = dict(member_images_per_sec=round(rate, 1),
                         ratio_to_sequential=round(rate / single, 3),
                         median_round_ratio=round(float(
                             np.median(round_ratios)), 3),
                         round_ratios=[round(float(r), 3)
                                       for r in round_ratios])
    print(f'{name}: {results[name]}')
  best = max((n for n in results if n != 'single'),
             key=lambda n: results[n]['median_round_ratio'])
  print(json.dumps({
      'members': members, 'batch_size': batch_size,
      'conv_impl': _CONV_IMPL.value,
      'single_images_per_sec': round(single, 1),
      'sweep_member_images_per_sec': results[best]['member_images_per_sec'],
      'ratio': results[best]['ratio_to_sequential'],
      'median_round_ratio': results[best]['median_round_ratio'],
      'best_layout': best,
      'default_member_layout': sweep.resolve_member_layout(
          'auto', jax.default_backend(), members,
          sweep.member_device_count(0, members)),
      'layouts': results, 'num_devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind,
      'backend': jax.default_backend()}))


if __name__ == '__main__':
  app.run(main)
