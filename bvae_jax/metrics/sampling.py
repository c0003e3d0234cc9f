"""Draws ground-truth points and encodes them, in disentanglement_lib's order.

`MetricInputs` is what every metric's `compute` receives; `draw_shared_codes`
draws the codes that MIG, modularity, DCI and SAP share.

`generate_batch_factor_code` is disentanglement_lib's
`evaluation/metrics/utils.py:generate_batch_factor_code` (Locatello et al.
2019) with our layout: it returns codes (num_points, num_codes) and factors
(num_points, num_factors), where disentanglement_lib returns both transposed.

`point_features` serves the metrics that build one labelled point from a whole
batch of observations (the β-VAE and FactorVAE scores). disentanglement_lib
loops point by point: draw the point's factors, render them, encode a batch of
64 or 128 images. We draw the same random numbers in the same order, but
render and encode many points in one call, which is what makes 10,000 points
× 128 images affordable. Two assumptions, both true of every data set here:

* `representation_fn` maps each image independently of the others in its
  call (an encoder's mean). A GPU encoder may still round differently at
  another batch size; that is the only way the codes can differ.
* Rendering may draw from the random state (disentanglement_lib's noisy
  dSprites variants do). `renders_deterministically` checks this once per
  call; when rendering draws, we render point by point between the draws,
  as disentanglement_lib does, and only encoding is batched.
"""

import dataclasses
from typing import Any, Callable

import numpy as np

# Points per draw of the shared codes (disentanglement_lib's batch_size for
# MIG, modularity, DCI and SAP): it fixes the order of the random draws.
SHARED_DRAW_BATCH = 16


@dataclasses.dataclass(frozen=True)
class MetricInputs:
  """What a metric computes from (see `bvae_jax.metrics`).

  Attributes:
    ground_truth: a `GroundTruthData`, for metrics that draw their own points;
      None where only shared codes are given (benchmarks, tests).
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    codes_train: (num_train, num_codes) shared codes of `draw_shared_codes`.
    factors_train: (num_train, num_factors) their factors.
    codes_test: (num_test, num_codes) shared test codes.
    factors_test: (num_test, num_factors) their factors.
  """
  ground_truth: Any
  representation_fn: Callable[[np.ndarray], np.ndarray] | None
  codes_train: np.ndarray
  factors_train: np.ndarray
  codes_test: np.ndarray
  factors_test: np.ndarray


def draw_shared_codes(ground_truth, representation_fn, num_train, num_test,
                      seed) -> MetricInputs:
  """Draws and encodes the points that MIG, modularity, DCI and SAP share.

  disentanglement_lib runs each of these metrics with its own
  `RandomState(seed)`, which draws `num_train` then `num_test` points in
  batches of 16; all four therefore see the same points, drawn once here.

  Args:
    ground_truth: a `GroundTruthData`.
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    num_train: training points.
    num_test: test points.
    seed: seeds the `np.random.RandomState` of the draws.

  Returns:
    MetricInputs holding `ground_truth`, `representation_fn` and the codes.
  """
  random_state = np.random.RandomState(seed)
  codes_train, factors_train = generate_batch_factor_code(
      ground_truth, representation_fn, num_train, random_state,
      SHARED_DRAW_BATCH)
  codes_test, factors_test = generate_batch_factor_code(
      ground_truth, representation_fn, num_test, random_state,
      SHARED_DRAW_BATCH)
  return MetricInputs(ground_truth, representation_fn, codes_train,
                      factors_train, codes_test, factors_test)


def encode(representation_fn, observations):
  """Returns `representation_fn(observations)` as a (n, num_codes) array.

  Raises:
    ValueError: when the codes are not one row per observation.
  """
  codes = np.asarray(representation_fn(observations))
  if codes.ndim != 2 or codes.shape[0] != len(observations):
    raise ValueError(
        f'representation_fn must map {len(observations)} observations to '
        f'codes of shape ({len(observations)}, num_codes), got {codes.shape}')
  return codes


def generate_batch_factor_code(ground_truth, representation_fn, num_points,
                               random_state, batch_size):
  """Codes and factors of `num_points` random points.

  Draws `ground_truth.sample(batch_size, random_state)` and encodes it, batch
  after batch (the last one shorter), as disentanglement_lib does. When
  rendering draws nothing, all factors are drawn first, in the same batches,
  and rendered and encoded in large calls.

  Args:
    ground_truth: a `GroundTruthData`.
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    num_points: number of points.
    random_state: np.random.RandomState; the only source of randomness.
    batch_size: points per draw and per call of `representation_fn`.

  Returns:
    (codes (num_points, num_codes), factors (num_points, num_factors) int).

  Raises:
    ValueError: when `num_points` or `batch_size` is below 1.
  """
  if num_points < 1 or batch_size < 1:
    raise ValueError(f'num_points ({num_points}) and batch_size '
                     f'({batch_size}) must be at least 1')
  if renders_deterministically(ground_truth):
    # Rendering draws nothing, so drawing every batch's factors first draws
    # the same numbers. Encoding them in large calls is faster, and an
    # encoder can round differently on tiny calls (evaluate.py pads them).
    factors = np.concatenate([
        ground_truth.sample_factors(min(num_points - start, batch_size),
                                    random_state)
        for start in range(0, num_points, batch_size)])
    return (codes_of_factors(ground_truth, representation_fn, factors,
                             random_state), factors)
  codes, factors = [], []
  done = 0
  while done < num_points:
    size = min(num_points - done, batch_size)
    batch_factors, observations = ground_truth.sample(size, random_state)
    factors.append(np.asarray(batch_factors))
    codes.append(encode(representation_fn, observations))
    done += size
  return np.concatenate(codes), np.concatenate(factors)


def renders_deterministically(ground_truth):
  """Whether rendering draws nothing from the random state it is given.

  Renders one point with a probe RandomState, never the caller's, and
  compares the probe's state before and after.
  """
  probe = np.random.RandomState(0)
  factors = ground_truth.sample_factors(1, probe)
  before = probe.get_state()
  ground_truth.sample_observations_from_factors(factors, probe)
  after = probe.get_state()
  return (np.array_equal(before[1], after[1]) and
          tuple(before[2:]) == tuple(after[2:]))


def codes_of_factors(ground_truth, representation_fn, factors, random_state,
                     images_per_call=4096):
  """Codes of given factor rows, rendered as one call would render them.

  Equivalent to `representation_fn(ground_truth.sample_observations_from_
  factors(factors, random_state))`, but rendered and encoded in chunks when
  rendering is deterministic, so that memory stays bounded.

  Returns:
    (len(factors), num_codes) codes.
  """
  if not renders_deterministically(ground_truth):
    observations = ground_truth.sample_observations_from_factors(
        factors, random_state)
    return np.concatenate([
        encode(representation_fn, observations[start:start + images_per_call])
        for start in range(0, len(observations), images_per_call)])
  return np.concatenate([
      encode(representation_fn, ground_truth.sample_observations_from_factors(
          factors[start:start + images_per_call], random_state))
      for start in range(0, len(factors), images_per_call)])


def point_features(ground_truth, representation_fn, draw_point, summarize,
                   num_points, random_state, images_per_point,
                   images_per_call=4096):
  """Labels and features of points that each summarise a batch of codes.

  Args:
    ground_truth: a `GroundTruthData`.
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    draw_point: `random_state -> (label, groups)`: draws one point exactly as
      disentanglement_lib's per-point function does, up to rendering; `groups`
      is a tuple of int (rows, num_factors) factor arrays, each of which
      disentanglement_lib renders with one call, in this order.
    summarize: codes (points, images_per_point, num_codes) -> per-point
      features (points, ...), rows independent of each other.
    num_points: number of points.
    random_state: np.random.RandomState; the only source of randomness.
    images_per_point: total rows of a point's groups.
    images_per_call: images per call of `representation_fn`, rounded down to
      whole points (at least one).

  Returns:
    (labels int64 (num_points,), features (num_points, ...)).

  Raises:
    ValueError: when `num_points` is below 1 or `draw_point` does not give
      `images_per_point` rows.
  """
  if num_points < 1:
    raise ValueError(f'num_points must be at least 1, got {num_points}')
  points_per_call = max(1, images_per_call // images_per_point)
  deterministic = renders_deterministically(ground_truth)
  labels, features = [], []
  done = 0
  while done < num_points:
    size = min(num_points - done, points_per_call)
    groups = []
    observations = []
    for _ in range(size):
      label, point_groups = draw_point(random_state)
      labels.append(label)
      groups.extend(point_groups)
      if not deterministic:
        # Rendering draws: it must happen between this point's draws and the
        # next point's, as in disentanglement_lib's loop.
        observations.extend(
            ground_truth.sample_observations_from_factors(g, random_state)
            for g in point_groups)
    if deterministic:
      observations = [ground_truth.sample_observations_from_factors(
          np.concatenate(groups), random_state)]
    codes = encode(representation_fn, np.concatenate(observations))
    if len(codes) != size * images_per_point:
      raise ValueError(f'draw_point gave {len(codes) // size} images per '
                       f'point, expected {images_per_point}')
    features.append(summarize(codes.reshape(size, images_per_point, -1)))
    done += size
  return np.asarray(labels, np.int64), np.concatenate(features)
