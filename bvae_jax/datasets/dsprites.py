r"""Procedural dSprites: renders the 737,280 images of Matthey et al. (2017).

dSprites (github.com/deepmind/dsprites-dataset) holds every combination of five
factors once, as 64x64 binary images:

  shape        3 values  square, ellipse, heart (latents_values 1, 2, 3)
  scale        6 values  linspace(0.5, 1, 6)
  orientation 40 values  linspace(0, 2π, 40); first and last coincide
  pos_x       32 values  linspace(0, 1, 32)
  pos_y       32 values  linspace(0, 1, 32)

This module draws them instead of downloading them, so the data set is there on
a machine with no network. What it reproduces of the real images:

* Image order. Image i has the factors of row i of the original file: i is the
  mixed-radix number over (shape, scale, orientation, pos_x, pos_y), pos_y
  fastest. The original's constant `color` column is dropped.
* Position. The sprite's centre (its area centroid) sits on pixel
  (row, column) = (16 + pos_y index, 16 + pos_x index), so over positions
  0 -> 1 it moves across the central half of the canvas, pixels 16 -> 47, one
  pixel per step. pos_x moves it along columns (right), pos_y along rows
  (down, as in the original, where y grows downward in the image).
  The original places sprites at sub-pixel positions (steps of 32/31 px); we
  use whole pixels so that every image is a cached mask pasted at an integer
  offset, which is what makes rendering fast. The difference is below one
  pixel.
* Size. At scale 1 the mean pixel counts over orientations are those measured
  on the real images: square ~368, ellipse ~288 (axes 2:1, long axis
  horizontal at orientation 0), heart ~225 (upright: lobes up, point down).
  Areas scale as scale².
* Rotation. Orientation θ rotates the sprite counter-clockwise as seen on the
  screen, about its centroid, as in the original.
* Borders. No pixel of any sprite is ever cut off by the canvas edge.

The heart is the classic construction: a square standing on one corner with a
half-disc on each of its two upper edges. Pixels are point-sampled on a
supersampled grid and kept where at least half the samples fall inside.

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

# Pixel areas at scale 1, measured on the real images.
_SQUARE_AREA = 368.0
_ELLIPSE_AREA = 288.0
_HEART_AREA = 225.0
# The sprite centre for position index 0; index i puts it on pixel 16 + i.
_FIRST_CENTRE_PIXEL = 16
# Masks are drawn on a square patch with the sprite centre on pixel
# (_MASK_CENTRE, _MASK_CENTRE). 32 is the smallest power of two holding the
# largest sprite (radius < 14 px) with the patch edge left empty.
_MASK_SIZE = 32
_MASK_CENTRE = 16
# Samples per pixel side for the point-sampled coverage test.
_SUPERSAMPLING = 8

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
  windows = _all_placements()
  sprite = (factors[:, 0] * FACTOR_SIZES[1] + factors[:, 1]) * FACTOR_SIZES[2]
  sprite += factors[:, 2]
  images = windows[sprite, factors[:, 4], factors[:, 3]]
  return images[..., None]


def sprite_masks():
  """All 720 sprite masks, centred on pixel (16, 16) of a 32x32 patch.

  Returns:
    Read-only bool array of shape (3, 6, 40, 32, 32), indexed by
    (shape, scale, orientation, row, column).
  """
  return _sprite_masks()


def _validated_factors(factors):
  """Returns `factors` as int64 after checking shape, dtype and ranges."""
  return ground_truth.validated_factors(factors, FACTOR_NAMES, FACTOR_SIZES)


@functools.lru_cache(maxsize=1)
def _all_placements():
  """Every image of the data set as a strided view, nothing copied.

  Each mask is padded so that the 64x64 window starting at (31 - r, 31 - c)
  holds the sprite centred on pixel (16 + r, 16 + c). Flipping the padded
  patch lets the window index be the position index itself.

  Returns:
    Read-only uint8 view of shape (720, 32, 32, 64, 64) indexed by
    (sprite, pos_y, pos_x, row, column).
  """
  masks = _sprite_masks().reshape(-1, _MASK_SIZE, _MASK_SIZE)
  num_positions = FACTOR_SIZES[3]
  offset = _FIRST_CENTRE_PIXEL - _MASK_CENTRE  # Row/column of the patch at index 0.
  padded_size = IMAGE_SIZE + num_positions - 1
  padded = np.zeros((masks.shape[0], padded_size, padded_size), np.uint8)
  start = num_positions - 1 + offset
  padded[:, start:start + _MASK_SIZE, start:start + _MASK_SIZE] = masks
  # Window w starts at row w; flipping makes window i start at row 31 - i.
  windows = np.lib.stride_tricks.sliding_window_view(
      padded, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2))[:, ::-1, ::-1]
  return windows


@functools.lru_cache(maxsize=1)
def _sprite_masks():
  """Point-samples every (shape, scale, orientation) sprite; see sprite_masks."""
  # Sample offsets from the patch centre, in pixels, x to the right and y up
  # (so that positive angles turn counter-clockwise on screen).
  fine = (np.arange(_MASK_SIZE * _SUPERSAMPLING) + 0.5) / _SUPERSAMPLING - 0.5
  fine = fine - _MASK_CENTRE
  x = fine[None, :]
  y = -fine[:, None]
  masks = np.zeros(FACTOR_SIZES[:3] + (_MASK_SIZE, _MASK_SIZE), bool)
  for shape in range(FACTOR_SIZES[0]):
    for scale_index, scale in enumerate(FACTOR_VALUES[1]):
      for orientation_index, angle in enumerate(FACTOR_VALUES[2]):
        # Rotating the sprite by +angle is testing samples rotated by -angle.
        cos, sin = np.cos(angle), np.sin(angle)
        u = (cos * x + sin * y) / scale
        v = (-sin * x + cos * y) / scale
        inside = _INSIDE_TESTS[shape](u, v)
        coverage = inside.reshape(
            _MASK_SIZE, _SUPERSAMPLING, _MASK_SIZE, _SUPERSAMPLING).mean((1, 3))
        masks[shape, scale_index, orientation_index] = coverage >= 0.5
  masks.flags.writeable = False
  return masks


def _inside_square(u, v):
  """Axis-aligned square of area _SQUARE_AREA centred on the origin."""
  half_side = np.sqrt(_SQUARE_AREA) / 2
  return (np.abs(u) <= half_side) & (np.abs(v) <= half_side)


def _inside_ellipse(u, v):
  """Ellipse of area _ELLIPSE_AREA, horizontal semi-axis twice the vertical."""
  minor = np.sqrt(_ELLIPSE_AREA / (2 * np.pi))
  major = 2 * minor
  return (u / major) ** 2 + (v / minor) ** 2 <= 1.0


def _heart_geometry():
  """Returns (half_diagonal, lobe_radius, centroid_height) of the heart.

  The heart is a square of side L standing on a corner (half-diagonal
  d = L/√2) plus the outer halves of two discs of radius L/2 centred on the
  midpoints of its two upper edges. Area = L²(1 + π/4). The outer half-discs'
  centroids lie 4r/(3π) beyond the edge midpoints (at height d/2), along the
  edges' outward normals, which point up at 45°.
  """
  side = np.sqrt(_HEART_AREA / (1 + np.pi / 4))
  half_diagonal = side / np.sqrt(2)
  lobe_radius = side / 2
  half_disc_area = np.pi * lobe_radius**2 / 2
  half_disc_height = (half_diagonal / 2
                      + 4 * lobe_radius / (3 * np.pi) / np.sqrt(2))
  centroid_height = 2 * half_disc_area * half_disc_height / _HEART_AREA
  return half_diagonal, lobe_radius, centroid_height


def _inside_heart(u, v):
  """Upright heart of area _HEART_AREA with its centroid on the origin."""
  half_diagonal, lobe_radius, centroid_height = _heart_geometry()
  v = v + centroid_height  # To coordinates where the square's centre is 0.
  in_square = np.abs(u) + np.abs(v) <= half_diagonal
  lobe_centre = half_diagonal / 2
  in_lobes = (np.abs(u) - lobe_centre) ** 2 + (v - lobe_centre) ** 2
  return in_square | (in_lobes <= lobe_radius**2)


_INSIDE_TESTS = (_inside_square, _inside_ellipse, _inside_heart)
