"""Encode every factor combination once, then look codes up.

The metric suite at disentanglement_lib's sample sizes encodes ~2.9M images
on dSprites (the β-VAE score alone 1.92M), drawn from only 737,280 factor
combinations. When the representation is deterministic (the posterior mean)
and the data set renders each combination to one image without drawing from
the random state, the code of a point depends on its factors alone. Then
encoding each combination once and looking the codes up gives the codes the
suite would have computed, at a quarter of the encodings.

`CodeTable` is a `GroundTruthData` whose "observations" are those codes; with
the identity as representation function every metric runs unchanged, draws
the same random numbers in the same order, and reads the same codes: bitwise,
since evaluate.py pads every encoder call to the same minimum rows per device
(tests/test_metric_code_table.py compares both paths on a real encoder, codes
and every score).
"""

import time

from absl import logging
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax.datasets import ground_truth as ground_truth_lib
from bvae_jax.metrics import sampling

# Combinations rendered and encoded per call while tabulating: bounds memory
# (8,192 float32 64×64 images are 128 MiB) and keeps progress lines regular.
TABULATE_CHUNK = 8192


class CodeTable(ground_truth_lib.GroundTruthData):
  """The codes of every factor combination of a ground truth.

  Attributes:
    codes: (num_combinations, num_codes), row i the code of the combination
      of mixed-radix index i (`factors_to_index`, last factor fastest).
  """

  def __init__(self, ground_truth, codes):
    super().__init__(ground_truth.factor_names, ground_truth.factors_num_values,
                     (codes.shape[1],))
    expected = num_combinations(ground_truth)
    if len(codes) != expected:
      raise ValueError(f'{len(codes)} codes for {expected} factor '
                       'combinations')
    self.codes = codes

  def sample_observations_from_factors(self, factors, random_state):
    del random_state  # Deterministic, as the ground truth it tabulates.
    return self.codes[self.factors_to_index(factors)]


def identity(codes):
  """The representation function that goes with a `CodeTable`."""
  return codes


def num_combinations(ground_truth) -> int:
  return int(np.prod(ground_truth.factors_num_values, dtype=np.int64))


def all_factors(ground_truth, start, stop):
  """Factor rows of the combinations with index in [start, stop)."""
  return np.stack(np.unravel_index(
      np.arange(start, stop), ground_truth.factors_num_values), axis=1)


def is_exact(ground_truth, deterministic_representation) -> bool:
  """Whether looking codes up gives the codes encoding would give.

  True when the representation is deterministic, rendering draws nothing
  from the random state (so each combination has one image), and every
  combination has an image (a record-backed set may lack some).
  """
  return (deterministic_representation
          and getattr(ground_truth, 'num_missing_combinations', 0) == 0
          and sampling.renders_deterministically(ground_truth))


def tabulate(ground_truth, representation_fn, chunk=TABULATE_CHUNK
             ) -> CodeTable:
  """Renders and encodes every factor combination of `ground_truth`.

  Logs progress with the rate and an ETA every ~30 s.

  Args:
    ground_truth: a `GroundTruthData` for which `is_exact` holds.
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    chunk: combinations per render-and-encode call.

  Returns:
    The CodeTable.
  """
  total = num_combinations(ground_truth)
  probe = np.random.RandomState(0)  # Rendering draws nothing (is_exact).
  codes = None
  progress = metric_logging.ProgressReporter(total, 0)
  start_time = last_log = time.monotonic()
  for start in range(0, total, chunk):
    stop = min(start + chunk, total)
    observations = ground_truth.sample_observations_from_factors(
        all_factors(ground_truth, start, stop), probe)
    chunk_codes = sampling.encode(representation_fn, observations)
    if codes is None:
      codes = np.empty((total, chunk_codes.shape[1]), chunk_codes.dtype)
    codes[start:stop] = chunk_codes
    if time.monotonic() - last_log >= 30.0 and stop < total:
      timing = progress.report(stop)
      logging.info('Code table: %d/%d combinations, %.0f images/s, ETA %s.',
                   stop, total, timing['steps_per_sec'],
                   metric_logging.format_eta(timing['eta_seconds']))
      last_log = time.monotonic()
  logging.info('Code table: encoded %d combinations in %.1f s.', total,
               time.monotonic() - start_time)
  return CodeTable(ground_truth, codes)
