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

A KL can also be large and carry nothing: an encoder whose posterior means
are the same for every input meets any target C by shifting or narrowing
that shared posterior (issue 25 found such a capacity run, |KL − C| ≈ 0 for
10,000 steps with every mean constant). The train step reports, per latent,
the part of the KL that depends on the input, `information_per_latent`: the
Gaussian upper bound on I(x; z_l), which is 0 when every input gets the same
posterior (objectives/elbo.py). `CollapseMonitor` warns when the KL is mostly
not of that kind, and `informative_latents` counts latents by it rather than
by their KL.
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
# A latent whose information (the Gaussian bound on I(x; z_l)) is at least
# this many nats is informative; ACTIVE_KL_NATS's threshold, on the part of
# the KL that depends on the input.
INFORMATIVE_KL_NATS = 0.1
# The encoder has collapsed when the KL is at least COLLAPSE_MIN_KL_NATS and
# less than this share of it depends on the input ...
COLLAPSE_INPUT_SHARE = 0.1
COLLAPSE_MIN_KL_NATS = 0.5
# ... for this many consecutive log intervals.
COLLAPSE_WARNING_INTERVALS = 3


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


def informative_latents(information_per_latent: np.ndarray) -> np.ndarray:
  """(L,) bool: latents whose information is ≥ INFORMATIVE_KL_NATS."""
  return np.asarray(information_per_latent) >= INFORMATIVE_KL_NATS


def is_collapsed(kl_total: float, information: float) -> bool:
  """The collapse rule: KL ≥ COLLAPSE_MIN_KL_NATS with under
  COLLAPSE_INPUT_SHARE of it information."""
  return bool(kl_total >= COLLAPSE_MIN_KL_NATS and
              information < COLLAPSE_INPUT_SHARE * kl_total)


def information_share(means: Mapping[str, np.ndarray]) -> float | None:
  """information / kl_total of one log interval (None without both)."""
  if 'information' not in means or 'kl_total' not in means:
    return None
  kl = float(means['kl_total'])
  return float(means['information']) / kl if kl > 0 else None


class CollapseMonitor:
  """Warns when the KL is mostly input-independent: the encoder has collapsed.

  Feed it each log interval's mean metrics. It warns once per episode, when
  for COLLAPSE_WARNING_INTERVALS intervals in a row the KL is at least
  COLLAPSE_MIN_KL_NATS and under COLLAPSE_INPUT_SHARE of it depends on the
  input (`information`, objectives/elbo.py).
  """

  def __init__(self, name: str = ''):
    """Args: name: e.g. a sweep member, to start the message with."""
    self._prefix = f'{name}: ' if name else ''
    self._streak = 0

  def update(self, step: int, means: Mapping[str, np.ndarray]) -> str | None:
    """Returns (and logs) the warning when the streak reaches its length."""
    share = information_share(means)
    if share is None or not np.isfinite(share):
      return None
    collapsed = is_collapsed(float(means['kl_total']),
                             float(means['information']))
    self._streak = self._streak + 1 if collapsed else 0
    if self._streak != COLLAPSE_WARNING_INTERVALS:
      return None
    message = (
        f'{self._prefix}step {step}: the encoder has collapsed: only '
        f'{float(means["information"]):.3f} of the '
        f'{float(means["kl_total"]):.2f} nats of KL depend on the input '
        f'({100 * share:.1f}%, under {100 * COLLAPSE_INPUT_SHARE:g}% for '
        f'{COLLAPSE_WARNING_INTERVALS} log intervals): the posterior means are '
        'nearly the same for every image, so the latents carry no information '
        'however well the KL tracks its target.')
    logging.warning(message)
    return message
