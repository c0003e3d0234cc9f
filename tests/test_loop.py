"""The training-loop skeleton (bvae_jax/training/loop.py) that every loop runs on."""

import os
import signal

import jax.numpy as jnp
import numpy as np
import pytest

from bvae_jax.training import loop
from bvae_jax.training import run_ahead


@pytest.mark.parametrize('step, every, last, at_steps, expected', [
    (100, 100, 1000, (), True),
    (150, 100, 1000, (), False),
    (1000, 300, 1000, (), True),  # The last step, off the interval.
    (999, 300, 1000, (), False),
    (50, 0, 1000, (), False),  # every=0: never periodically ...
    (1000, 0, 1000, (), False),  # ... nor at the end,
    (250, 0, 1000, (250, 500), True),  # but at the listed steps.
    (250, 100, 1000, (250,), True),
])
def test_is_time(step, every, last, at_steps, expected):
  assert loop.is_time(step, every, last, at_steps) is expected


def test_run_loop_runs_each_action_at_its_steps_in_order():
  calls = []
  dispatched = []

  def dispatch(step):
    dispatched.append(step)
    return jnp.float32(step)

  actions = [
      loop.Periodic('log', 3, lambda s: calls.append(('log', s))),
      loop.Periodic('checkpoint', 4, lambda s: calls.append(('checkpoint', s))),
      loop.Periodic('evaluate', 0, lambda s: calls.append(('evaluate', s)),
                    at_steps=(2,)),
      loop.Periodic('figures', 1, lambda s: calls.append(('figures', s)),
                    enabled=False),
  ]
  admitted = []

  class CountingRunAhead(run_ahead.RunAhead):

    def admit(self, step_output):
      admitted.append(float(step_output))
      super().admit(step_output)

  in_flight = CountingRunAhead(2)
  loop.run_loop(dispatch, start_step=1, num_train_steps=7, actions=actions,
                in_flight=in_flight)
  assert dispatched == [2, 3, 4, 5, 6, 7]  # Resumed after step 1.
  assert calls == [('evaluate', 2), ('log', 3), ('checkpoint', 4), ('log', 6),
                   ('log', 7), ('checkpoint', 7)]
  assert admitted == [2, 3, 4, 5, 6, 7]  # Each step's output is bounded.
  assert in_flight.deepest <= 2


def test_run_loop_does_nothing_when_already_trained():
  def dispatch(step):
    raise AssertionError(f'step {step} dispatched')

  loop.run_loop(dispatch, start_step=10, num_train_steps=10,
                actions=[loop.Periodic('log', 1, dispatch)])


def test_an_action_error_stops_the_loop():
  def fail(step):
    raise FloatingPointError(f'step {step}')

  dispatched = []
  with pytest.raises(FloatingPointError, match='step 3'):
    loop.run_loop(lambda s: dispatched.append(s) or jnp.float32(0),
                  start_step=0, num_train_steps=10,
                  actions=[loop.Periodic('log', 3, fail)])
  assert dispatched == [1, 2, 3]


def test_progress_reports_rates_and_the_line(caplog):
  times = iter([0.0, 0.0, 10.0, 20.0])
  progress = loop.Progress(0, 1000, units_per_step=64,
                           clock=lambda: next(times))
  with caplog.at_level('INFO', logger='absl'):
    rates = progress.report(100, {'loss': 2.0, 'kl_per_latent/z0': 1.0,
                                  'steps_per_sec': 3.0})
  assert rates == pytest.approx({'steps_per_sec': 10.0,
                                 'images_per_sec': 640.0})
  assert progress.summary(100) == 'Trained steps 1–100 in 0:00:20 (5.0 steps/s).'


def test_first_nonfinite():
  history = [{'loss': np.float32(1.0), 'grad_norm': np.float32(1.0)},
             {'loss': np.float32(1.0), 'grad_norm': np.float32(np.inf)},
             {'loss': np.float32(np.nan), 'grad_norm': np.float32(1.0)}]
  assert loop.first_nonfinite(history, 5) == 7
  assert loop.first_nonfinite(history, 5, ('loss', 'grad_norm')) == 6
  assert loop.first_nonfinite(history[:1], 5) is None


def test_checkpoints_never_save_a_step_twice():
  saved = []
  checkpoints = loop.Checkpoints(saved.append, start_step=3)
  checkpoints.save_if_unsaved(3)  # The resumed step is a checkpoint already.
  checkpoints.save(5)
  checkpoints.save_if_unsaved(5)
  checkpoints.save_if_unsaved(6)
  assert saved == [5, 6]


def test_sigterm_stops_after_the_step_in_flight_and_saves_it():
  saved = []

  def dispatch(step):
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)  # The notice arrives mid-step.
    return jnp.float32(step)

  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(loop.Preempted, match=r'Preempted \(SIGTERM\) at step 3'):
    loop.run_loop(dispatch, start_step=0, num_train_steps=10, actions=[],
                  save=saved.append)
  assert saved == [3]
  assert signal.getsignal(signal.SIGTERM) is before  # Restored.
