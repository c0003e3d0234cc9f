r"""Where a training step's time goes on XLA:CPU: a profile, summarised.

  python -m benchmarks.profile_step --cpu_devices=2,4 --seconds=8
  python -m benchmarks.profile_step --cpu_devices=2 --members=8   # a sweep step
  python -m benchmarks.profile_step --cpu_devices=2 --encode=lax --batch_size=512

For each device count (one child process each: the count is fixed when JAX
starts), runs the step of configs/capacity.py for --seconds under
`jax.profiler.trace` and reads the trace's XLA op events (thunks executed per
device). It reports:

  * wall: the traced window, steps/s and images/s;
  * per op category (matrix products/convolutions, copies/transposes/pads,
    collectives, elementwise and other fusions), the op-seconds summed over
    devices and their share, and the ops that take longest;
  * concurrency: the share of the window during which 0, 1, 2, ... ops run at
    once over all devices. With C cores, time with fewer than C ops running
    is idle capacity: a core without work (waiting for a dependency, the
    all-reduce or the host).

The last line printed is one JSON object, a list with one entry per count.
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

from absl import app
from absl import flags
import jax

from benchmarks import child_process
from benchmarks import steps as step_builders
from bvae_jax.core import devices
from bvae_jax.core import step as step_lib
from bvae_jax.sweeps import sweep
from bvae_jax.training import run_ahead
import configs.capacity

_CPU_DEVICES = flags.DEFINE_list('cpu_devices', ['2', '4'],
                                 'Host device counts to profile.')
_SECONDS = flags.DEFINE_float('seconds', 8.0, 'Traced seconds per count.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Batch (per member).')
_MEMBERS = flags.DEFINE_integer('members', 0,
                                'Profile a sweep of this many members; 0: one '
                                'model.')
_MEMBER_LAYOUT = flags.DEFINE_string(
    'member_layout', 'vmap', "With --members: the sweep's member layout "
    '(vmap, map, loop or auto).')
_ENCODE = flags.DEFINE_string(
    'encode', '', 'Profile the evaluation encoder (posterior mean, this '
    'conv_impl, --batch_size images per call) instead of a training step.')
_CHILD = flags.DEFINE_bool('child', False, 'Internal: profile in this process.')

# Op category by the first word of the HLO op name (the trace's `hlo_op`:
# e.g. `copy_bitcast_fusion.12` is a copy, `maximum_bitcast_fusion` a ReLU,
# `ynn_fusion.50` a matrix product XLA:CPU hands to its YNNPACK library).
CATEGORIES = {
    'collective': ('all-reduce', 'all-gather', 'reduce-scatter',
                   'collective-permute', 'all-to-all'),
    'matmul/conv': ('dot', 'convolution', 'ynn', 'xnn', 'onednn',
                    'custom-call'),
    'copy/transpose/pad': ('copy', 'transpose', 'pad', 'concatenate', 'slice',
                           'dynamic-slice', 'dynamic-update-slice', 'gather',
                           'scatter'),
}


def category(hlo_op: str) -> str:
  """'collective', 'matmul/conv', 'copy/transpose/pad' or 'elementwise/other'."""
  first = re.split(r'[._]', hlo_op.lower())[0]
  for label, words in CATEGORIES.items():
    if first in words:
      return label
  return 'elementwise/other'


def summarise(trace_events, window_start, window_end):
  """Op seconds by category and the concurrency histogram of a window.

  Args:
    trace_events: Chrome trace events (dicts) of the profile.
    window_start, window_end: microseconds; ops are clipped to the window.

  Returns:
    (seconds by category, {ops running at once: share of the window},
     number of op events, seconds by op name).
  """
  by_category = collections.Counter()
  by_op = collections.Counter()
  edges = []
  count = 0
  for event in trace_events:
    args = event.get('args') or {}
    if event.get('ph') != 'X' or 'hlo_op' not in args:
      continue
    start = max(event['ts'], window_start)
    end = min(event['ts'] + event.get('dur', 0), window_end)
    if end <= start:
      continue
    count += 1
    by_category[category(args['hlo_op'])] += (end - start) / 1e6
    by_op[args['hlo_op']] += (end - start) / 1e6
    edges += [(start, 1), (end, -1)]
  edges.sort()
  running, last = 0, window_start
  histogram = collections.Counter()
  for time_us, change in edges:
    histogram[running] += time_us - last
    running += change
    last = time_us
  histogram[running] += window_end - last
  total = window_end - window_start
  return (dict(by_category),
          {k: round(v / total, 3) for k, v in sorted(histogram.items())},
          count, by_op)


def _encoder_step(conv_impl, batch):
  """The evaluation encoder as a `step_fn(state, images) -> (state, out)`."""
  config = configs.capacity.get_config()
  mesh = devices.create_mesh()
  model = step_lib.create_model(config).clone(conv_impl=conv_impl)
  params = step_lib.initial_train_state(
      model, mesh, seed=config.seed, objective_name=config.objective).params
  images = jax.device_put(step_builders.binary_images((batch, 64, 64, 1)),
                          devices.batch_sharded(mesh))

  @jax.jit
  def encode(params, images):
    mean, _ = model.apply({'params': params}, images, method=model.encode)
    return params, {'loss': mean.sum()}

  return encode, params, (images,)


def profile_here():
  """Profiles in this process (its device count already set); returns a dict."""
  batch = _BATCH_SIZE.value
  if _ENCODE.value:
    step_fn, state, args = _encoder_step(_ENCODE.value, batch)
    images_per_step = batch
  elif _MEMBERS.value:
    step_fn, state, images, _, _ = step_builders.build_sweep_step(
        _MEMBERS.value, batch, 0, False, 'matmul', _MEMBER_LAYOUT.value)
    args = (images,)
    images_per_step = _MEMBERS.value * batch
  else:
    step_fn, state, images, key = step_builders.build_train_step('matmul', batch)
    args = (images, key)
    images_per_step = batch
  for _ in range(10):  # Compile and warm up.
    state, metrics = step_fn(state, *args)
  jax.block_until_ready(sweep.last_loss(metrics))
  directory = tempfile.mkdtemp(prefix='profile_step_')
  num_steps = 0
  in_flight = run_ahead.RunAhead()
  with jax.profiler.trace(directory):
    start = time.perf_counter()
    while time.perf_counter() - start < _SECONDS.value:
      state, metrics = step_fn(state, *args)
      in_flight.admit(sweep.last_loss(metrics))
      num_steps += 1
    in_flight.drain()
    elapsed = time.perf_counter() - start
  path, = glob.glob(os.path.join(directory, '**', '*.trace.json.gz'),
                    recursive=True)
  with gzip.open(path) as f:
    events = json.load(f)['traceEvents']
  op_events = [e for e in events if e.get('ph') == 'X'
               and 'hlo_op' in (e.get('args') or {})]
  # The window: from the first to the last op, steady state only.
  window_start = min(e['ts'] for e in op_events)
  window_end = max(e['ts'] + e.get('dur', 0) for e in op_events)
  seconds, concurrency, count, by_op = summarise(events, window_start,
                                                 window_end)
  total_op_seconds = sum(seconds.values())
  return {
      'cpu_devices': jax.device_count(), 'members': _MEMBERS.value,
      'cores': len(os.sched_getaffinity(0)),
      'steps_per_sec': round(num_steps / elapsed, 2),
      'images_per_sec': round(num_steps * images_per_step / elapsed, 1),
      'window_seconds': round((window_end - window_start) / 1e6, 2),
      'op_events': count,
      'op_seconds': {k: round(v, 2) for k, v in sorted(
          seconds.items(), key=lambda kv: -kv[1])},
      'op_share': {k: round(v / total_op_seconds, 3)
                   for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])},
      'ops_running_share_of_window': concurrency,
      'top_ops_seconds': {name: round(v, 3)
                          for name, v in by_op.most_common(15)},
  }


def main(argv):
  del argv
  if _CHILD.value:
    devices.configure_host_devices(int(_CPU_DEVICES.value[0]),
                                   _BATCH_SIZE.value)
    print(json.dumps(profile_here()))
    return
  results = []
  for count in _CPU_DEVICES.value:
    result = child_process.json_result(
        'benchmarks.profile_step', '--child', f'--cpu_devices={count}',
        f'--seconds={_SECONDS.value}', f'--batch_size={_BATCH_SIZE.value}',
        f'--members={_MEMBERS.value}', f'--encode={_ENCODE.value}',
        f'--member_layout={_MEMBER_LAYOUT.value}')
    print(f'{count} devices: {result}', flush=True)
    results.append(result)
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
