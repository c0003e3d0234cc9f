"""Readable capacity runs: a warning when the KL does not follow C, and which
latents are active.

Burgess et al. (2018) steer the KL to a target C with γ·|KL − C|. If γ is too
small for the data, the KL drifts away from C and the run no longer tests
what the schedule says; Burgess' advice (relayed in 1Konny/Beta-VAE issue 8)
is to choose γ just large enough to keep the KL within about 1 nat of C.
`CapacityGapMonitor` watches the logged |KL − C| and warns, once per episode,
when it has stayed above 1 nat for several log intervals in a row.

A latent whose KL is near zero carries no information, but histogram
estimates of its mutual information with the factors (disentanglement_lib's
MIG discretisation scales each latent to its own range) can still be large.
`inactive_latents` marks such latents for the figures.
"""

from typing import Mapping

from absl import logging
import numpy as np

# |KL − C| above this many nats counts as not following C.
GAP_WARNING_NATS = 1.0
# Consecutive log intervals over that before the warning.
GAP_WARNING_INTERVALS = 3
# A latent whose batch-mean KL is below this many nats is inactive.
ACTIVE_KL_NATS = 0.1


class CapacityGapMonitor:
  """Warns when |KL − C| stays above GAP_WARNING_NATS.

  Feed it each log interval's mean metrics; objectives without a capacity
  (no `kl_capacity_gap`) are ignored.
  """

  def __init__(self, gamma: float, name: str = ''):
    """Args: gamma: the run's γ, for the message; name: e.g. a sweep member."""
    self._gamma = gamma
    self._prefix = f'{name}: ' if name else ''
    self._streak = 0

  def update(self, step: int, means: Mapping[str, np.ndarray]) -> str | None:
    """Returns (and logs) the warning when the streak reaches its length."""
    gap = means.get('kl_capacity_gap')
    if gap is None or not np.isfinite(gap):
      return None
    self._streak = self._streak + 1 if gap > GAP_WARNING_NATS else 0
    if self._streak != GAP_WARNING_INTERVALS:
      return None
    message = (
        f'{self._prefix}step {step}: |KL − C| has stayed above '
        f'{GAP_WARNING_NATS:g} nat for {GAP_WARNING_INTERVALS} log intervals '
        f'(now {float(gap):.2f} nats, KL {float(means["kl_total"]):.2f} at C = '
        f'{float(means["capacity"]):.2f}): γ = {self._gamma:g} is too small '
        'to hold the KL at C on this data; raise config.gamma.')
    logging.warning(message)
    return message


def inactive_latents(kl_per_latent: np.ndarray) -> np.ndarray:
  """(L,) bool: latents whose KL is below ACTIVE_KL_NATS."""
  return np.asarray(kl_per_latent) < ACTIVE_KL_NATS
