"""dSprites' ground-truth factors as the inputs of Fig. 3's generator.

Burgess et al. (2018) feed the generator the factors themselves, each through
a noisy channel of its own (models.NoisyFactorChannels). The paper does not
say how a categorical and a periodic factor enter; here each factor is a group
of standardised columns (zero mean and unit variance per column over the
uniform distribution of dSprites' values; for orientation only nearly, as its
40 values count θ = 0 twice), so one learned scale means the same for every
factor:

  pos_x        1 column   the position value, standardised
  pos_y        1 column   the position value, standardised
  scale        1 column   the scale value, standardised
  shape        3 columns  one-hot, centred (− 1/3) and divided by √(2/9):
                          a categorical factor has no order to put on a line
  orientation  2 columns  (cos θ, sin θ) · √2: the circle, so θ = 0 and
                          θ = 2π (dSprites' first and last values, the same
                          image) are one input and no seam is learned

A factor's KL is summed over its columns, so every factor has one number of
nats however many columns it has. Columns are not free, though: a factor of d
columns gets d times the KL for the same channel parameters, so while the
capacity term pushes every channel open at the same rate, shape (3 columns)
and orientation (2) gain KL faster than position and scale for that reason
alone. The 'scalar' encoding puts every factor on one column instead, the
value of dSprites' `latents_values` standardised (shape 1, 2, 3 as numbers;
orientation with its seam between 2π and 0): each factor on an equal footing,
at the price of an order on shape and a seam on orientation.
"""

import numpy as np

from bvae_jax.datasets import dsprites

# (name, columns), in input order, of the default 'columns' encoding.
FACTOR_GROUPS = (('pos_x', 1), ('pos_y', 1), ('scale', 1), ('shape', 3),
                 ('orientation', 2))
FACTOR_NAMES = tuple(name for name, _ in FACTOR_GROUPS)
GROUP_SIZES = tuple(size for _, size in FACTOR_GROUPS)
ENCODINGS = ('columns', 'scalar')


def group_sizes(encoding: str = 'columns') -> tuple[int, ...]:
  """Columns per factor (FACTOR_NAMES order) of an encoding.

  Raises:
    ValueError: for an encoding not in ENCODINGS.
  """
  if encoding not in ENCODINGS:
    raise ValueError(f'factor encoding must be one of {ENCODINGS}, got '
                     f'{encoding!r}')
  return GROUP_SIZES if encoding == 'columns' else (1,) * len(FACTOR_NAMES)

_SHAPE, _SCALE, _ORIENTATION, _POS_X, _POS_Y = range(5)  # dSprites' columns.


def _standardised(values: np.ndarray, index: np.ndarray) -> np.ndarray:
  """values[index] minus the mean of `values`, over their standard deviation."""
  return (values[index] - values.mean()) / values.std()


def dsprites_factor_inputs(factor_indices: np.ndarray,
                           encoding: str = 'columns') -> np.ndarray:
  """The generator's inputs for dSprites factor indices.

  Args:
    factor_indices: (N, 5) int, dSprites' columns (shape, scale, orientation,
      pos_x, pos_y).
    encoding: 'columns' (the module docstring's table) or 'scalar' (one
      standardised value per factor).

  Returns:
    (N, sum(group_sizes(encoding))) float32, factors in FACTOR_NAMES order:
    8 columns, or 5 for 'scalar'.

  Raises:
    ValueError: on a wrong shape or an out-of-range factor (dsprites'
      message, which names the factor).
  """
  factors = np.asarray(factor_indices)
  dsprites.factors_to_index(factors)  # Validates shape and ranges.
  if factors.ndim != 2:
    raise ValueError(
        f'factor_indices must have shape (N, 5), got {factors.shape}')
  sizes = group_sizes(encoding)
  values = dsprites.FACTOR_VALUES
  if sizes == (1,) * len(FACTOR_NAMES):
    return np.stack([
        _standardised(values[column], factors[:, column])
        for column in (_POS_X, _POS_Y, _SCALE, _SHAPE, _ORIENTATION)
    ], axis=1).astype(np.float32)
  one_hot = np.eye(3)[factors[:, _SHAPE]]
  angle = values[_ORIENTATION][factors[:, _ORIENTATION]]
  columns = [
      _standardised(values[_POS_X], factors[:, _POS_X])[:, None],
      _standardised(values[_POS_Y], factors[:, _POS_Y])[:, None],
      _standardised(values[_SCALE], factors[:, _SCALE])[:, None],
      (one_hot - 1 / 3) / np.sqrt(2 / 9),
      np.sqrt(2) * np.stack([np.cos(angle), np.sin(angle)], axis=1),
  ]
  return np.concatenate(columns, axis=1).astype(np.float32)
