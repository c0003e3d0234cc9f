r"""Data sets with known generative factors, for the disentanglement metrics.

`GroundTruthData` has the method names of disentanglement_lib's
`disentanglement_lib/data/ground_truth/ground_truth_data.py`
(Locatello et al. 2019), so metrics written against either work with both:

  num_factors, factors_num_values, observation_shape
  sample_factors(num, random_state)                   -> int (num, num_factors)
  sample_observations_from_factors(factors, random_state)
                                                      -> float32 NHWC in [0, 1]
  sample(num, random_state)                           -> (factors, observations)
  sample_observations(num, random_state)              -> observations

`random_state` is a `np.random.RandomState`. `sample_factors` draws each
factor uniformly and independently, factor by factor, with
`random_state.randint(size, size=num)`, as disentanglement_lib does, so the
same RandomState gives the same factors in both libraries. Observations are
exactly the image of the given factors: rendered (procedural sets) or looked
up by index (a table from factors to records, never a search).

Implementations:
  RenderedGroundTruth  factors -> a renderer (procedural dSprites, blobs).
  RecordGroundTruth    factors -> record index -> a reader (real dSprites,
                       3D Chairs, Shapes3D).
A data set may build its own on these (color_dsprites.ColoredGroundTruth).
"""

import abc

import numpy as np


def validated_factors(factors, names, sizes, first_column: int = 0):
  """Returns `factors` (..., len(names)) as int64 after checking them.

  The one check of factor indices that every data set's renderer and ground
  truth uses.

  Args:
    factors: int array whose last axis holds factors `names`.
    names: the factors' names.
    sizes: each factor's number of values.
    first_column: the column of names[0] in the caller's factor rows, for
      the message (coloured dSprites' colours follow dSprites' five).

  Raises:
    ValueError: naming the factor, its column, the bad value and the valid
      range; or on a wrong last axis or a non-integer dtype.
  """
  factors = np.asarray(factors)
  if factors.ndim == 0 or factors.shape[-1] != len(names):
    raise ValueError(f'factors must have a last axis of size {len(names)} '
                     f'{tuple(names)}, got shape {factors.shape}')
  if factors.size and not np.issubdtype(factors.dtype, np.integer):
    raise ValueError(f'factors must be integers, got dtype {factors.dtype}')
  factors = factors.astype(np.int64)
  for column, (name, size) in enumerate(zip(names, sizes)):
    values = factors[..., column]
    bad = (values < 0) | (values >= size)
    if bad.any():
      raise ValueError(
          f'factor {name!r} (column {first_column + column}) has value '
          f'{values[bad].flat[0]}, valid range is [0, {size - 1}]')
  return factors


class NoGroundTruthError(ValueError):
  """A data set without known generative factors was used for metrics."""


class GroundTruthData(abc.ABC):
  """A data set whose observations are a function of discrete factors.

  Attributes:
    factor_names: one name per factor.
    factors_num_values: number of values of each factor.
    observation_shape: (H, W, C) of one observation.
  """

  def __init__(self, factor_names, factors_num_values, observation_shape):
    if len(factor_names) != len(factors_num_values):
      raise ValueError(f'{len(factor_names)} factor names for '
                       f'{len(factors_num_values)} factor sizes')
    self.factor_names = tuple(factor_names)
    self.factors_num_values = [int(n) for n in factors_num_values]
    self.observation_shape = tuple(observation_shape)

  @property
  def num_factors(self):
    return len(self.factors_num_values)

  def sample_factors(self, num, random_state):
    """Draws `num` factor rows, each factor uniform and independent.

    Returns:
      int64 (num, num_factors).
    """
    factors = np.zeros((num, self.num_factors), np.int64)
    for column, size in enumerate(self.factors_num_values):
      factors[:, column] = random_state.randint(size, size=num)
    return factors

  @abc.abstractmethod
  def sample_observations_from_factors(self, factors, random_state):
    """Returns the observations of `factors` (num, num_factors) ints.

    Returns:
      float32 (num,) + observation_shape, in [0, 1].

    Raises:
      ValueError: on a wrong shape or an out-of-range factor, naming it.
    """

  def sample(self, num, random_state):
    """Returns (factors, observations) of `num` random points."""
    factors = self.sample_factors(num, random_state)
    return factors, self.sample_observations_from_factors(factors, random_state)

  def sample_observations(self, num, random_state):
    """Returns the observations of `num` random points."""
    return self.sample(num, random_state)[1]

  def validated_factors(self, factors):
    """Returns `factors` as int64 (n, num_factors) after checking them.

    Raises:
      ValueError: naming the factor, the bad value and the valid range.
    """
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != self.num_factors:
      raise ValueError(
          f'factors must have shape (num, {self.num_factors}) '
          f'{self.factor_names}, got {factors.shape}')
    return validated_factors(factors, self.factor_names,
                             self.factors_num_values)

  def factors_to_index(self, factors):
    """Mixed-radix index of factor rows, last factor fastest: int64 (n,)."""
    factors = self.validated_factors(factors)
    place_values = np.cumprod([1] + self.factors_num_values[:0:-1])[::-1]
    return factors @ place_values.astype(np.int64)


class RenderedGroundTruth(GroundTruthData):
  """Observations drawn by a renderer."""

  def __init__(self, factor_names, factors_num_values, observation_shape,
               render, max_pixel_value):
    """Args: names, sizes and shape as GroundTruthData; `render` maps int
    (n, num_factors) to uint8 images with white = `max_pixel_value`."""
    super().__init__(factor_names, factors_num_values, observation_shape)
    self._render = render
    self._scale = np.float32(1.0 / max_pixel_value)

  def sample_observations_from_factors(self, factors, random_state):
    del random_state  # Deterministic.
    factors = self.validated_factors(factors)
    return self._render(factors).astype(np.float32) * self._scale


class RecordGroundTruth(GroundTruthData):
  """Observations read from records through a table factors -> record."""

  def __init__(self, factor_names, factors_num_values, observation_shape,
               images, record_of_index=None, source_name=''):
    """Builds the lookup.

    Args:
      factor_names, factors_num_values, observation_shape: as GroundTruthData.
      images: a reader with `read_images(record_indices)` (datasets.records).
      record_of_index: int64 (prod(factors_num_values),): record holding each
        factor combination (mixed-radix index, last factor fastest), -1 where
        none does. None: record i is combination i.
      source_name: named in errors.
    """
    super().__init__(factor_names, factors_num_values, observation_shape)
    self._images = images
    self._record_of_index = record_of_index
    self._source_name = source_name

  @classmethod
  def from_labels(cls, factor_names, factors_num_values, observation_shape,
                  images, labels, source_name=''):
    """Builds the table from every record's factor labels (num_records, F).

    Where several records share a combination, the first is used.
    """
    ground_truth = cls(factor_names, factors_num_values, observation_shape,
                       images, source_name=source_name)
    indices = ground_truth.factors_to_index(labels)
    table = np.full(int(np.prod(factors_num_values)), -1, np.int64)
    # Reversed so that the first record of a combination is the one kept.
    table[indices[::-1]] = np.arange(len(indices))[::-1]
    ground_truth._record_of_index = table
    return ground_truth

  @property
  def num_missing_combinations(self):
    if self._record_of_index is None:
      return 0
    return int((self._record_of_index < 0).sum())

  def sample_observations_from_factors(self, factors, random_state):
    del random_state  # Deterministic.
    index = self.factors_to_index(factors)
    if self._record_of_index is None:
      records = index
    else:
      records = self._record_of_index[index]
      if (records < 0).any():
        missing = self.validated_factors(factors)[records < 0][0]
        raise ValueError(
            f'{self._source_name}: no record has the factors '
            f'{dict(zip(self.factor_names, missing.tolist()))}')
    return self._images.read_images(records)
