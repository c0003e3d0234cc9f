r"""What a sweep member's non-finite freeze costs on top of the solo step.

  python -m benchmarks.member_freeze --seconds=24 --rounds=6

A sweep member's step (`sweep._member_update`) is the solo `train_step` plus
a freeze: a member whose loss or gradient turns non-finite keeps its last
finite state. This times, in one process and alternating in rounds, one model
data-parallel over all devices (batch 64, configs/capacity.py) stepped four
ways:
  * solo: `step_lib.make_train_step`, what `bvae_jax.main` runs;
  * cond: `sweep._member_update`, the freeze as one `lax.cond` (the code's);
  * where: the freeze as a `jnp.where` over every leaf of the state (the code
    before 2026-12-07);
  * none: the member step without the freeze (the failure step recorded only).
Reported: images/s per variant and the median of the rounds' ratios to solo.
The last line printed is a JSON object.
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import steps as step_builders
from bvae_jax.core import devices
from bvae_jax.core import step as step_lib
from bvae_jax.sweeps import sweep
from bvae_jax.training import run_ahead

_SECONDS = flags.DEFINE_float('seconds', 24.0, 'Timed seconds per variant.')
_ROUNDS = flags.DEFINE_integer('rounds', 6, 'Rounds (variants in turn).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 64, 'Batch size.')


def _member_steps(model, static):
  """{variant: (member, failed_at, images, key, hparams, step) -> ...}."""

  def unfrozen(member, failed_at, images, key, hparams, step):
    new, metrics = step_lib.train_step(member, images, key, hparams,
                                       model=model, static=static)
    finite = jnp.isfinite(metrics['loss']) & jnp.isfinite(metrics['grad_norm'])
    return new, finite, metrics

  def failure_step(failed_at, finite, step):
    return jnp.where((failed_at == 0) & ~finite, step + 1, failed_at)

  def where(member, failed_at, images, key, hparams, step):
    new, finite, metrics = unfrozen(member, failed_at, images, key, hparams,
                                    step)
    keep = (failed_at == 0) & finite
    new = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, member)
    return new, failure_step(failed_at, finite, step), metrics

  def none(member, failed_at, images, key, hparams, step):
    new, finite, metrics = unfrozen(member, failed_at, images, key, hparams,
                                    step)
    return new, failure_step(failed_at, finite, step), metrics

  def cond(member, failed_at, images, key, hparams, step):
    return sweep._member_update(member, failed_at, images, key, hparams,  # pylint: disable=protected-access
                                step=step, model=model, static=static)

  return {'cond': cond, 'where': where, 'none': none}


def main(argv):
  del argv
  batch_size = _BATCH_SIZE.value
  devices.configure_host_devices(0, batch_size)
  solo, state, images, key = step_builders.build_train_step('matmul',
                                                            batch_size)
  config = step_builders.train_config('matmul', batch_size)
  mesh = devices.create_mesh()
  model = step_lib.create_model(config)
  replicated = devices.replicated(mesh)
  hparams = jax.device_put(step_lib.hyperparameters(config), replicated)
  zero = jax.device_put(jnp.zeros((), jnp.int32), replicated)
  copy = jax.jit(lambda tree: jax.tree.map(lambda leaf: leaf + 0, tree))

  def wrap(fn):
    jitted = jax.jit(fn, in_shardings=(
        replicated, replicated, devices.batch_sharded(mesh), replicated,
        replicated, replicated), out_shardings=(replicated,) * 3,
                     donate_argnums=0)
    return lambda member: (lambda out: (out[0], out[2]))(
        jitted(member, zero, images, key, hparams, zero))

  variants = {'solo': lambda member: solo(member, images, key)}
  for name, fn in _member_steps(model, step_lib.static_fields(config)).items():
    variants[name] = wrap(fn)
  states = {name: copy(state) for name in variants}

  def timed(name, seconds):
    in_flight = run_ahead.RunAhead()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
      states[name], metrics = variants[name](states[name])
      in_flight.admit(metrics['loss'])
      steps += 1
    in_flight.drain()
    return steps * batch_size / (time.perf_counter() - start)

  for name in variants:  # Compile and warm up.
    timed(name, 2.0)
  rates = {name: [] for name in variants}
  for _ in range(_ROUNDS.value):
    for name in variants:
      rates[name].append(timed(name, _SECONDS.value / _ROUNDS.value))
  solo_rates = np.array(rates['solo'])
  results = {name: dict(
      images_per_sec=round(float(np.mean(r)), 1),
      median_round_ratio=round(float(np.median(np.array(r) / solo_rates)), 3))
             for name, r in rates.items()}
  for name, result in results.items():
    print(f'{name}: {result}')
  print(json.dumps({'batch_size': batch_size, 'rounds': _ROUNDS.value,
                    'variants': results, 'num_devices': jax.device_count(),
                    'backend': jax.default_backend()}))


if __name__ == '__main__':
  app.run(main)
