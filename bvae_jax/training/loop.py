"""The one training-loop skeleton: every loop of bvae_jax runs its steps here.

A loop (one run: train.py; a sweep: sweep.py; the Fig. 3 generator:
reproductions/burgess_fig3.py) hands `run_loop` two things of its own:

- `dispatch(step)`: runs training step `step` (1-based: the number of
  updates once it is done) and returns a small output of it (e.g. the loss),
  which the skeleton hands to `RunAhead` without fetching it;
- its periodic actions: `Periodic(name, every, action)`, asked in order after
  each step whether it is their time (`is_time`, big_vision's `itstime`).

The skeleton owns what every loop needs alike: the run-ahead bound
(run_ahead.py: on XLA:CPU an unbounded run-ahead deadlocks the all-reduce of
multi-device steps), the one rule for "is it time?", progress with steps/s and
ETA (`Progress`), and the end-of-run summary. What to log, check, save or draw
stays in the loop that owns it.
"""

import dataclasses
import signal
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax.training import run_ahead


def is_time(step: int, every: int, last_step: int,
            at_steps: Sequence[int] = ()) -> bool:
  """Whether a periodic action runs after `step`.

  Args:
    step: the step just finished (1-based).
    every: the interval; 0 or less: never periodically (nor at the end).
    last_step: the run's last step; an action with an interval also runs
      there, so that the end of the run is always logged, saved and drawn.
    at_steps: steps at which it also runs (e.g. config.eval_at_steps).
  """
  periodic = every > 0 and (step % every == 0 or step == last_step)
  return periodic or step in tuple(at_steps)


@dataclasses.dataclass(frozen=True)
class Periodic:
  """An action that runs after the steps `is_time` picks.

  Attributes:
    name: what it does ('log', 'checkpoint', 'evaluate', 'figures', …).
    every: its interval in steps (0: only at `at_steps`).
    action: called with the step just finished.
    at_steps: steps at which it also runs.
    enabled: False leaves it out (e.g. figures on processes other than 0).
  """
  name: str
  every: int
  action: Callable[[int], None]
  at_steps: tuple[int, ...] = ()
  enabled: bool = True

  def is_due(self, step: int, last_step: int) -> bool:
    return self.enabled and is_time(step, self.every, last_step, self.at_steps)


class Progress:
  """Steps/s over the last interval, the ETA, and the console line.

  Like clu's `periodic_actions.ReportProgress`: the rate is measured over the
  last interval only, so a slow first step (compilation) does not skew the
  ETA.
  """

  def __init__(self, start_step: int, num_train_steps: int, *,
               units_per_step: float | None = None, unit: str = 'images',
               clock: Callable[[], float] = time.monotonic):
    self.start_step = start_step
    self.num_train_steps = num_train_steps
    self._units_per_step = units_per_step
    self._unit = unit
    self._clock = clock
    self._start_time = clock()
    self._reporter = metric_logging.ProgressReporter(num_train_steps,
                                                     start_step, clock=clock)

  def report(self, step: int, scalars: Mapping[str, float],
             label: str = '') -> dict[str, float]:
    """Logs the interval's line; returns its rates to record beside the
    scalars ({'steps_per_sec', and '<unit>_per_sec' with units_per_step})."""
    timing = self._reporter.report(step)
    logging.info('%s', metric_logging.interval_line(
        step, self.num_train_steps, timing, scalars, unit=self._unit,
        units_per_step=self._units_per_step, label=label))
    rates = {'steps_per_sec': timing['steps_per_sec']}
    if self._units_per_step:
      rates[f'{self._unit.replace("-", "_")}_per_sec'] = (
          timing['steps_per_sec'] * self._units_per_step)
    return rates

  def summary(self, last_step: int) -> str:
    """'Trained steps a–b in H:MM:SS (x steps/s).'"""
    seconds = self._clock() - self._start_time
    steps = last_step - self.start_step
    rate = steps / seconds if seconds > 0 else float('nan')
    return (f'Trained steps {self.start_step + 1}–{last_step} in '
            f'{metric_logging.format_eta(seconds)} ({rate:.1f} steps/s).')


# The exit status of a run stopped by a preemption notice after saving a
# checkpoint: EX_TEMPFAIL of sysexits.h, "try again later" (the same command
# resumes); a scheduler's requeue can key on it.
PREEMPTED_EXIT_STATUS = 75


class Preempted(Exception):
  """A loop stopped for a preemption notice, its state saved at `step`."""

  def __init__(self, step: int, reason: str):
    super().__init__(f'Preempted ({reason}) at step {step}: a checkpoint of '
                     f'step {step} is saved; the same command resumes from it.')
    self.step = step
    self.reason = reason


class Preemption:
  """Tells a loop when to stop for a preemption notice (SIGTERM, SIGINT).

  SLURM, Cloud TPU VMs and spot instances send SIGTERM some time before they
  kill a job. One process: while this is entered, SIGTERM and SIGINT only
  set a flag (in the main thread; elsewhere, signals keep their handlers),
  and the loop stops after the step in flight. Several processes: JAX's
  preemption service (started by jax.distributed.initialize) receives the
  notice and agrees on one step for every process
  (`multihost_utils.reached_preemption_sync_point`, what Orbax's
  `CheckpointManager.reached_preemption` asks), so all save the same step.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received: str | None = None
    self._previous: dict[int, Any] = {}
    self._multi_process = jax.process_count() > 1

  def __enter__(self) -> 'Preemption':
    if (not self._multi_process and
        threading.current_thread() is threading.main_thread()):
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._note)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def _note(self, signum, frame) -> None:
    del frame
    if self.received is None:
      logging.warning('%s received: stopping after the step in flight, '
                      'saving a checkpoint there.',
                      signal.Signals(signum).name)
    self.received = signal.Signals(signum).name

  def reached(self, step: int) -> bool:
    """Whether to stop after `step` (the same step on every process)."""
    if self._multi_process:
      try:
        if multihost_utils.reached_preemption_sync_point(step):
          self.received = self.received or 'preemption notice'
          return True
      except RuntimeError:  # No preemption service in this job.
        return False
      return False
    return self.received is not None


class Checkpoints:
  """A loop's checkpoint saves: `save(step)` on its interval, and
  `save_if_unsaved(step)` where a checkpoint must exist (before an
  evaluation, on preemption) without saving a step twice."""

  def __init__(self, save_fn: Callable[[int], None], start_step: int):
    self._save_fn = save_fn
    self.saved_step = start_step

  def save(self, step: int) -> None:
    self._save_fn(step)
    self.saved_step = step

  def save_if_unsaved(self, step: int) -> None:
    if self.saved_step != step:
      self.save(step)


def run_loop(dispatch: Callable[[int], Any], *, start_step: int,
             num_train_steps: int, actions: Sequence[Periodic],
             in_flight: run_ahead.RunAhead | None = None,
             progress: Progress | None = None,
             save: Callable[[int], None] | None = None) -> None:
  """Runs steps start_step + 1 … num_train_steps with the periodic actions.

  Args:
    dispatch: runs one step (given its 1-based number) and returns a small
      output of it to bound the run-ahead with (never fetched).
    start_step: the steps already done (a resumed run's checkpoint step).
    num_train_steps: the last step.
    actions: run in this order after each step whose time it is.
    in_flight: the run-ahead bound (default: run_ahead.RunAhead()).
    progress: logs the end-of-run summary when given.
    save: saves a checkpoint of the step just finished (e.g.
      Checkpoints.save_if_unsaved). Given, a preemption notice (`Preemption`:
      SIGTERM, SIGINT) makes the loop save the step in flight and stop with
      `Preempted`.

  Raises:
    Preempted: after saving, on a preemption notice.
    Whatever an action raises (e.g. FloatingPointError on a non-finite loss);
    the caller's `finally` closes what it opened.
  """
  in_flight = in_flight or run_ahead.RunAhead()
  if start_step >= num_train_steps:
    logging.info('Already trained for %d ≥ num_train_steps=%d steps.',
                 start_step, num_train_steps)
    return
  logging.info('Training from step %d to %d.', start_step, num_train_steps)
  with Preemption() as preemption:
    for step in range(start_step + 1, num_train_steps + 1):
      in_flight.admit(dispatch(step))
      for periodic in actions:
        if periodic.is_due(step, num_train_steps):
          periodic.action(step)
      if save is not None and preemption.reached(step):
        save(step)
        logging.info(in_flight.summary())
        raise Preempted(step, preemption.received)
  logging.info(in_flight.summary())
  if progress is not None:
    logging.info(progress.summary(num_train_steps))


def first_nonfinite(metric_history: Sequence[Mapping[str, np.ndarray]],
                    first_step: int, names: Sequence[str] = ('loss',)
                    ) -> int | None:
  """The step of the first entry whose `names` are not all finite, or None.

  Args:
    metric_history: per-step metrics on the host, oldest first.
    first_step: the step of metric_history[0].
    names: the metrics that must be finite (those present are checked).
  """
  for offset, metrics in enumerate(metric_history):
    if not all(np.all(np.isfinite(metrics[name])) for name in names
               if name in metrics):
      return first_step + offset
  return None
