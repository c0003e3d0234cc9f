"""Bounds how many dispatched training steps may still be running.

JAX dispatches a jitted step asynchronously: the call returns once the step is
queued, so a loop that fetches nothing runs ahead of the device. On XLA:CPU
with several devices in one process that is not only wasteful but fatal
(docs/design.md, "Why training loops bound their run-ahead"): the CPU client
lets at most 32 computations per device be in flight
(`CpuClientOptions::max_inflight_computations_per_device`), and a launch that
finds its device's limit reached blocks a thread of the same small pool (one
thread per device) that the queued steps need to run their all-reduce. Once
one pool thread waits there, the oldest step can never gather all its devices,
and XLA aborts the process after its rendezvous timeout.

Every loop that dispatches steps without fetching their results keeps its
run-ahead below that limit with `RunAhead`: the training loops through the
skeleton they share (loop.run_loop), benchmarks directly.
Two or three steps in flight already keep the device busy while the host
prepares the next batch; benchmarks/run_ahead.py measures the choice.
"""

import collections
from typing import Any

import jax

# Steps that may be dispatched but unfinished. Far below XLA:CPU's 32
# computations per device (the deadlock above); ≥ 2 so that the next step is
# always queued while the host prepares the one after (benchmarks/run_ahead.py).
DEFAULT_MAX_IN_FLIGHT = 4


class RunAhead:
  """Keeps at most `max_in_flight` dispatched steps unfinished.

  After dispatching a step, hand one of its outputs to `admit` (a small one,
  e.g. the loss: it is only waited on, never copied). When more than
  `max_in_flight` steps are unfinished, `admit` blocks until the oldest is
  done, so at most `max_in_flight` are unfinished when it returns and at most
  one more while the next step is being dispatched.

  Attributes:
    max_in_flight: the bound.
    deepest: the most unfinished steps `admit` has returned with (benchmarks
      and tests check it).
  """

  def __init__(self, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT):
    if max_in_flight < 1:
      raise ValueError(f'max_in_flight must be ≥ 1, got {max_in_flight}.')
    self.max_in_flight = max_in_flight
    self.deepest = 0
    self._in_flight: collections.deque[Any] = collections.deque()

  def admit(self, step_output: Any) -> None:
    """Records a dispatched step; waits while too many are unfinished."""
    self._in_flight.append(step_output)
    while self._in_flight and _is_ready(self._in_flight[0]):
      self._in_flight.popleft()  # Steps finish in dispatch order.
    while len(self._in_flight) > self.max_in_flight:
      jax.block_until_ready(self._in_flight.popleft())
    self.deepest = max(self.deepest, len(self._in_flight))

  def summary(self) -> str:
    """One log line: the deepest run-ahead seen, and the bound."""
    return (f'Run-ahead: at most {self.deepest} dispatched steps were left '
            f'unfinished (bound {self.max_in_flight}).')

  def drain(self) -> None:
    """Waits for every admitted step."""
    while self._in_flight:
      jax.block_until_ready(self._in_flight.popleft())


def _is_ready(tree: Any) -> bool:
  return all(leaf.is_ready() for leaf in jax.tree_util.tree_leaves(tree)
             if isinstance(leaf, jax.Array))
