"""The bounded run-ahead of the training loops (bvae_jax/training/run_ahead.py).

The regression tests run the real command line in child processes: before the
bound, a run whose steps were dispatched far ahead of the device (a log
interval longer than the run) deadlocked in XLA:CPU's all-reduce and aborted
(issue 10; docs/design.md says why). The settings here make the host outrun
the device quickly: measured with benchmarks/run_ahead.py before the fix, 2
devices at batch 4 had 30 steps unfinished after ~230 steps and 4 devices at
batch 8 after ~170, and runs this long aborted in most tries. They compile
with every XLA pass, as users' runs do (the rest of the suite turns most off
to compile faster): the deadlock and the bound are properties of the
executables users run.
"""

import sys

import jax
import jax.numpy as jnp
import pytest

from bvae_jax.training import run_ahead
from cli_processes import run

# One try per setting: without the bound these runs aborted in most tries, and
# the deterministic tests of `RunAhead.admit` below pin the bound itself; a
# second try cost ~100 s of the suite's 15-minute budget.
_REPEATS = 1


@jax.jit
def _slow_step(x):
  # ~20 matrix products of 256×256: milliseconds, far longer than a dispatch.
  for _ in range(20):
    x = jnp.tanh(x @ x / 256.0)
  return x


def _unfinished(outputs):
  return sum(not output.is_ready() for output in outputs)


@pytest.mark.parametrize('max_in_flight', [1, 3])
def test_admit_keeps_at_most_max_in_flight_steps_unfinished(max_in_flight):
  window = run_ahead.RunAhead(max_in_flight)
  x = jnp.eye(256) + 0.01
  outputs = []
  for _ in range(12):
    x = _slow_step(x)  # Each depends on the last: they finish in order.
    outputs.append(x)
    window.admit(x)
    assert _unfinished(outputs) <= max_in_flight
  assert 1 <= window.deepest <= max_in_flight
  window.drain()
  assert _unfinished(outputs) == 0
  assert f'bound {max_in_flight}' in window.summary()


def test_without_a_bound_the_same_steps_run_ahead():
  # The control for the test above: the host does outrun these steps.
  x = jnp.eye(256) + 0.01
  outputs = []
  for _ in range(12):
    x = _slow_step(x)
    outputs.append(x)
  assert _unfinished(outputs) > 3
  jax.block_until_ready(x)


def test_bound_must_be_positive():
  with pytest.raises(ValueError, match='max_in_flight'):
    run_ahead.RunAhead(0)


@pytest.fixture(scope='module')
def data_dir(tiny_data_dir):
  return tiny_data_dir


@pytest.mark.parametrize('devices, batch_size, steps, log_every_steps', [
    (2, 4, 500, 100_000),  # A log interval far longer than the run.
    (4, 8, 400, 400),  # log_every_steps = num_train_steps.
])
@pytest.mark.slow
def test_training_with_a_long_log_interval_finishes(data_dir, tmp_path,
                                                    devices, batch_size, steps,
                                                    log_every_steps):
  for repeat in range(_REPEATS):
    result = run([
        sys.executable, '-m', 'bvae_jax.main', '--config=configs/capacity.py',
        f'--workdir={tmp_path / str(repeat)}', f'--cpu_devices={devices}',
        '--config.dataset=dsprites_procedural/tiny',
        f'--config.data_dir={data_dir}', f'--config.batch_size={batch_size}',
        f'--config.num_train_steps={steps}',
        f'--config.log_every_steps={log_every_steps}',
        f'--config.checkpoint_every_steps={steps}',
        f'--config.figure_every_steps={steps}', '--config.eval_every_steps=0'
    ], timeout=240, users_xla_optimizations=True)
    assert f'Devices: {devices} (cpu)' in result.stderr
    assert f'Step {steps}/{steps}' in result.stderr
    bound = run_ahead.DEFAULT_MAX_IN_FLIGHT
    assert f'(bound {bound})' in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('layout, members', [
    # 2 members x 2-way data parallelism on 4 devices, in one program.
    ('map', 2),
    # One call per member per step, each over the 4 devices: 10 members
    # dispatch 10 computations per device per step, so a bound counted in
    # sweep steps (4 in flight: 40 computations) would pass XLA:CPU's 32.
    ('loop', 10),
])
def test_sweep_with_a_long_log_interval_finishes(data_dir, tmp_path, layout,
                                                 members):
  steps = 300 if layout == 'map' else 60
  capacities = ','.join(f'{5.0 + c:.1f}' for c in range(members))
  result = run([
      sys.executable, '-m', 'bvae_jax.main',
      '--config=configs/sweep_capacity.py:quick',
      f'--workdir={tmp_path}', '--cpu_devices=4',
      '--config.dataset=dsprites_procedural/tiny',
      f'--config.data_dir={data_dir}', '--config.batch_size=8',
      f'--config.num_train_steps={steps}', '--config.log_every_steps=100000',
      f'--config.checkpoint_every_steps={steps}',
      '--config.sweep.evaluate=False',
      f'--config.sweep.member_layout={layout}',
      f'--config.sweep.grid.capacity_max=({capacities})'
  ], timeout=240, users_xla_optimizations=True)
  assert f'Step {steps}/{steps} (100%)' in result.stderr
  assert f'median of {members} members' in result.stderr
  assert f"member layout '{layout}'" in result.stderr
  assert f'(bound {run_ahead.DEFAULT_MAX_IN_FLIGHT})' in result.stderr


@pytest.mark.slow
def test_fig3_generator_with_a_long_log_interval_finishes(tmp_path):
  # The Fig. 3 generator's loop (reproductions/burgess_fig3.py) on 4 devices,
  # with a log interval as long as the run: only the skeleton's bound keeps
  # its run-ahead below XLA:CPU's limit.
  steps = 300
  result = run([
      sys.executable, '-m', 'bvae_jax.main',
      '--config=configs/burgess_fig3.py:quick', f'--workdir={tmp_path}',
      '--cpu_devices=4', '--config.batch_size=8',
      f'--config.num_train_steps={steps}',
      f'--config.log_every_steps={steps}',
      f'--config.checkpoint_every_steps={steps}',
      f'--config.capacity_anneal_steps={steps}',
  ], timeout=240, users_xla_optimizations=True)
  assert 'Devices' not in result.stderr or 'Devices: 4' in result.stderr
  assert f'Step {steps}/{steps} (100%)' in result.stderr
  assert f'(bound {run_ahead.DEFAULT_MAX_IN_FLIGHT})' in result.stderr
  assert (tmp_path / 'fig3_capacity_allocation.png').exists()
