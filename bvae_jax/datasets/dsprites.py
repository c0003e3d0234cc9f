r"""Procedural dSprites: renders the 737,280 images of Matthey et al. (2017).

dSprites (github.com/deepmind/dsprites-dataset) holds every combination of five
factors once, as 64x64 binary images:

  shape        3 values  square, ellipse, heart (latents_values 1, 2, 3)
  scale        6 values  linspace(0.5, 1, 6)
  orientation 40 values  linspace(0, 2π, 40); first and last coincide
  pos_x       32 values  linspace(0, 1, 32)
  pos_y       32 values  linspace(0, 1, 32)

This module draws them instead of downloading them, so the data set is there on
a machine with no network. The drawing is a model of how the originals were
made (with the LÖVE 2D engine on a canvas of size 1, binary, no
anti-aliasing), fitted to real frames of the data set
(tests/data/dsprites_reference_frames.npz): every one of those 160 frames has
an image here with intersection-over-union ≥ 0.989, and 151 of them match
pixel for pixel (tests/test_dsprites_fidelity.py; docs/datasets.md shows them
side by side). The model, in canvas units (1 = 64 px):

* Sampling. Pixel (row r, column c) is on iff the point (c + 0.5, r + 0.5) px
  lies inside the shape's outline (a polygon; crossing-number rule, half-open
  rows): what a GPU rasteriser does without anti-aliasing.
* Position. The sprite's reference point is at 0.25 + 0.5 · value along x
  (columns, to the right) and y (rows, down): 16 + 32·k/31 px for position
  index k, so sprites move in sub-pixel steps of 32/31 px and a square's or
  ellipse's centroid goes from pixel 15.5 to 47.5.
* Scale multiplies the outline about the reference point; orientation θ
  rotates it about that point, counter-clockwise on screen.
* Square: side 0.3 (19.2 px; 10 … 20 pixels a side at orientation 0 over the
  six scales, ~368 px rotated at scale 1).
* Ellipse: semi-axes 12.78 × 7.22 px (long axis horizontal at orientation
  0), drawn as a 64-gon as LÖVE draws ellipses (any count ≥ 32 fits the
  frames equally well; 0.2 × 0.1125 canvas units fits worse).
* Heart: the classic parametric heart x = 16 sin³t, y = 13 cos t − 5 cos 2t
  − 2 cos 3t − cos 4t (y up), as a 128-gon, 0.3 wide (x · 0.3/32) and
  0.3/29 canvas units per unit of y. Its reference point lies 2.175 units of
  y below the curve's origin, so the heart turns about a point 1.44 px below
  that origin and its centroid, ~1.9 px above the reference point at scale 1,
  circles it as it rotates, as in the real frames.

Image order: image i has the factors of row i of the original file; i is the
mixed-radix number over (shape, scale, orientation, pos_x, pos_y), pos_y
fastest. The original's constant `color` column is dropped.

Usage:

  factors = index_to_factors(np.arange(10))        # (10, 5) int
  images = render(factors)                         # (10, 64, 64, 1) uint8 {0, 1}
"""

import functools

import numpy as np

from bvae_jax.datasets import ground_truth

FACTOR_NAMES = ('shape', 'scale', 'orientation', 'pos_x', 'pos_y')
FACTOR_SIZES = (3, 6, 40, 32, 32)
# Float values per factor, as in the original file's `latents_values`.
FACTOR_VALUES = (
    np.array([1.0, 2.0, 3.0]),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
IMAGE_SIZE = 64
SQUARE, ELLIPSE, HEART = 0, 1, 2

# The geometry, fitted to the real frames (module docstring), in canvas units.
POSITION_OFFSET = 0.25  # Reference point = POSITION_OFFSET + POSITION_RANGE · value.
POSITION_RANGE = 0.5
SQUARE_SIDE = 0.3
ELLIPSE_SEMI_AXES = (12.78 / 64, 7.22 / 64)  # (horizontal, vertical).
ELLIPSE_SEGMENTS = 64
HEART_WIDTH = 0.3  # x = HEART_WIDTH / 2 · sin³t.
HEART_Y_UNIT = 0.3 / 29  # Canvas units per unit of the curve's y.
HEART_REFERENCE_Y = 2.175  # Curve units of y below the curve's origin.
HEART_SEGMENTS = 128

# Rows drawn around the reference point: the largest sprite (a square at 45°,
# half-diagonal 13.6 px) spans fewer than 32 rows.
_ROWS = 32
# Outline crossings kept per row: 2 for convex shapes, 4 for the heart.
_CROSSINGS = 6
# Images per vectorised block (bounds the temporary arrays to ~50 MB).
_BLOCK = 8_192

# Mixed-radix place values: index = sum(factor * place), pos_y fastest.
_PLACE_VALUES = np.array(
    [int(np.prod(FACTOR_SIZES[i + 1:])) for i in range(len(FACTOR_SIZES))],
    dtype=np.int64,
)


def index_to_factors(indices):
  """Maps image indices to factor indices.

  Args:
    indices: int array of any shape, values in [0, NUM_IMAGES).

  Returns:
    int64 array of shape `indices.shape + (5,)`, columns
    (shape, scale, orientation, pos_x, pos_y).

  Raises:
    ValueError: if an index is out of range or not an integer.
  """
  indices = np.asarray(indices)
  if not np.issubdtype(indices.dtype, np.integer):
    raise ValueError(f'image indices must be integers, got dtype {indices.dtype}')
  bad = (indices < 0) | (indices >= NUM_IMAGES)
  if bad.any():
    raise ValueError(
        f'image index {indices[bad].flat[0]} out of range [0, {NUM_IMAGES})')
  indices = indices.astype(np.int64)[..., None]
  return (indices // _PLACE_VALUES) % np.array(FACTOR_SIZES)


def factors_to_index(factors):
  """Maps factor indices to image indices; the inverse of `index_to_factors`.

  Args:
    factors: int array of shape (..., 5), columns
      (shape, scale, orientation, pos_x, pos_y).

  Returns:
    int64 array of shape `factors.shape[:-1]`.

  Raises:
    ValueError: on a wrong shape or an out-of-range factor (the message names
      the factor, the bad value and the valid range).
  """
  factors = _validated_factors(factors)
  return factors @ _PLACE_VALUES


def render(factor_indices):
  """Renders dSprites images.

  Args:
    factor_indices: int array of shape (N, 5), columns
      (shape, scale, orientation, pos_x, pos_y), each in [0, FACTOR_SIZES[k]).

  Returns:
    uint8 array of shape (N, 64, 64, 1) with values in {0, 1}.

  Raises:
    ValueError: on a wrong shape or an out-of-range factor (the message names
      the factor, the bad value and the valid range).
  """
  factors = _validated_factors(factor_indices)
  if factors.ndim != 2:
    raise ValueError(
        f'factor_indices must have shape (N, 5), got {factors.shape}')
  images = np.empty((len(factors), IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
  for start in range(0, len(factors), _BLOCK):
    block = factors[start:start + _BLOCK]
    images[start:start + _BLOCK, ..., 0] = _unpack_rows(_render_rows(block))
  return images


def render_rows(factor_indices):
  """Renders dSprites images as bits: (N, 64) uint64, bit c of word r being
  pixel (r, c). 8× smaller than `render`'s pixels, and what the fidelity
  search (bvae_jax/evaluation/dataset_fidelity.py) compares with popcounts.

  Raises:
    ValueError: as `render`.
  """
  factors = _validated_factors(factor_indices)
  if factors.ndim != 2:
    raise ValueError(
        f'factor_indices must have shape (N, 5), got {factors.shape}')
  words = np.empty((len(factors), IMAGE_SIZE), np.uint64)
  for start in range(0, len(factors), _BLOCK):
    words[start:start + _BLOCK] = _render_rows(factors[start:start + _BLOCK])
  return words


def reference_point(position_index):
  """Pixel coordinate (continuous; pixel i spans [i, i + 1]) of a position."""
  value = FACTOR_VALUES[3][position_index]
  return IMAGE_SIZE * (POSITION_OFFSET + POSITION_RANGE * value)


def outline(shape: int, scale_index: int = 5,
            orientation_index: int = 0) -> np.ndarray:
  """The sprite's outline polygon in pixels, relative to its reference point.

  Args:
    shape: 0 square, 1 ellipse, 2 heart.
    scale_index: index into FACTOR_VALUES[1].
    orientation_index: index into FACTOR_VALUES[2].

  Returns:
    (M, 2) vertices (x to the right, y down), scaled and rotated.
  """
  return _outlines(shape)[scale_index, orientation_index]


def _unit_outline(shape: int) -> np.ndarray:
  """(M, 2) vertices in pixels at scale 1, orientation 0 (x right, y down)."""
  if shape == SQUARE:
    half = SQUARE_SIDE * IMAGE_SIZE / 2
    return np.array([[-half, -half], [half, -half], [half, half],
                     [-half, half]])
  if shape == ELLIPSE:
    t = 2 * np.pi * np.arange(ELLIPSE_SEGMENTS) / ELLIPSE_SEGMENTS
    return IMAGE_SIZE * np.stack([ELLIPSE_SEMI_AXES[0] * np.cos(t),
                                  ELLIPSE_SEMI_AXES[1] * np.sin(t)], axis=1)
  t = 2 * np.pi * np.arange(HEART_SEGMENTS) / HEART_SEGMENTS
  x = HEART_WIDTH / 2 * np.sin(t)**3
  y_up = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
  y = HEART_Y_UNIT * (-y_up - HEART_REFERENCE_Y)
  return IMAGE_SIZE * np.stack([x, y], axis=1)


@functools.cache
def _outlines(shape: int) -> np.ndarray:
  """(6, 40, M, 2): the outline at every scale and orientation."""
  unit = _unit_outline(shape)
  scale = FACTOR_VALUES[1][:, None, None]
  cos = np.cos(FACTOR_VALUES[2])[None, :, None]
  sin = np.sin(FACTOR_VALUES[2])[None, :, None]
  x, y = unit[None, None, :, 0] * scale, unit[None, None, :, 1] * scale
  # Counter-clockwise on screen, where y points down.
  return np.stack([cos * x + sin * y, -sin * x + cos * y], axis=-1)


def _first_row(position_index):
  """The first of the _ROWS rows drawn for vertical position index k."""
  return np.floor(reference_point(position_index)).astype(np.int64) - _ROWS // 2


@functools.cache
def _crossing_table() -> np.ndarray:
  """Where each row's pixel centres cross each sprite's outline.

  A sprite's crossings do not depend on its horizontal position (that only
  shifts them), so one table serves all 737,280 images: (3, 6, 40, 32 pos_y,
  _ROWS, _CROSSINGS) float64, x relative to the reference point, +inf where
  a row has fewer crossings. 35 MB, built in about a second.
  """
  table = np.full(FACTOR_SIZES[:3] + (FACTOR_SIZES[4], _ROWS, _CROSSINGS),
                  np.inf)
  # y of each drawn row's pixel centres relative to the reference point.
  rows = _first_row(np.arange(FACTOR_SIZES[4]))[:, None] + np.arange(_ROWS)
  row_y = rows + 0.5 - reference_point(np.arange(FACTOR_SIZES[4]))[:, None]
  level = row_y[:, :, None]  # (32 pos_y, _ROWS, 1) against (40, 1, 1, M).
  for shape in range(FACTOR_SIZES[0]):
    for scale_index, vertices in enumerate(_outlines(shape)):  # (40, M, 2)
      following = np.roll(vertices, -1, axis=-2)
      x0, y0 = vertices[:, None, None, :, 0], vertices[:, None, None, :, 1]
      x1, y1 = following[:, None, None, :, 0], following[:, None, None, :, 1]
      crosses = (y0 > level) != (y1 > level)  # Half-open: each edge once.
      with np.errstate(divide='ignore', invalid='ignore'):
        x = np.where(crosses, x0 + (level - y0) * (x1 - x0) / (y1 - y0),
                     np.inf)
      kept = min(_CROSSINGS, x.shape[-1])
      table[shape, scale_index, ..., :kept] = np.sort(x, axis=-1)[..., :kept]
  table.flags.writeable = False
  return table


@functools.cache
def _bits_from() -> np.ndarray:
  """(65,) uint64: entry a has the bits of columns a … 63 set."""
  return np.array([((1 << 64) - 1) ^ ((1 << a) - 1) for a in range(65)],
                  dtype=np.uint64)


def _render_rows(factors: np.ndarray) -> np.ndarray:
  """(N, 64) uint64: bit c of word r is pixel (r, c) of each image."""
  crossings = _crossing_table()[factors[:, 0], factors[:, 1], factors[:, 2],
                                factors[:, 4]]  # (N, _ROWS, _CROSSINGS)
  centre_x = reference_point(factors[:, 3])[:, None, None]
  # Pixel c is inside iff an odd number of crossings lie at or left of its
  # centre c + 0.5: the parity of "column ≥ ceil(crossing − 0.5)" masks.
  with np.errstate(invalid='ignore'):
    first_column = np.ceil(crossings + centre_x - 0.5)
  first_column = np.clip(np.nan_to_num(first_column, posinf=IMAGE_SIZE), 0,
                         IMAGE_SIZE).astype(np.int64)
  row_bits = np.bitwise_xor.reduce(_bits_from()[first_column], axis=-1)
  words = np.zeros((len(factors), IMAGE_SIZE), np.uint64)
  rows = _first_row(factors[:, 4])[:, None] + np.arange(_ROWS)
  words[np.arange(len(factors))[:, None], rows] = row_bits
  return words


def _unpack_rows(words: np.ndarray) -> np.ndarray:
  """(N, 64) uint64 row words -> (N, 64, 64) uint8 pixels."""
  as_bytes = np.ascontiguousarray(words, dtype='<u8').view(np.uint8)
  return np.unpackbits(as_bytes.reshape(len(words), IMAGE_SIZE, 8), axis=-1,
                       bitorder='little')


def _validated_factors(factors):
  """Returns `factors` as int64 after checking shape, dtype and ranges."""
  return ground_truth.validated_factors(factors, FACTOR_NAMES, FACTOR_SIZES)
