r"""Coloured dSprites (Burgess et al. 2018, Fig. 4a): sprites in random colours.

Each dSprites image is multiplied by a colour (r, g, b), every channel drawn
from COLOR_LEVELS = linspace(0.5, 1, 6): the sprite takes that colour and the
background stays black. This is disentanglement_lib's `ColorDSprites`
(uniform in [0.5, 1] per channel) made discrete, so that colour is a
ground-truth factor the metrics can use: the data set has 8 factors,

  shape, scale, orientation, pos_x, pos_y   as dSprites (3, 6, 40, 32, 32)
  red, green, blue                          6 levels each, index k ->
                                            0.5 + 0.1 k

and 3-channel images in [0, 1].

Training records: record i of the underlying dSprites data set (real or
procedural) gets colour `record_colors(n)[i]`, drawn once from a fixed seed,
so the data set is one fixed set of coloured images, and the factors of every
record are known. Ground truth: `sample_observations_from_factors` colours
the dSprites image of the first five factors with the last three, so every
(sprite, colour) combination can be asked for, and is exact.

Colour is applied when reading (a multiply, ~10 µs a batch of 64), so the
coloured set shares the prepared dSprites records instead of storing 3-channel
copies of them: SPEC, the registry's `color_dsprites`, has the sources of
dsprites_tfds.DSPRITES (same rule, same records), each wrapped in the reader
`ColoredImages` and the ground truth `ColoredGroundTruth`.
"""

import dataclasses

import numpy as np

from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds
from bvae_jax.datasets import ground_truth

COLOR_FACTOR_NAMES = ('red', 'green', 'blue')
COLOR_LEVELS = np.linspace(0.5, 1.0, 6).astype(np.float32)
FACTOR_NAMES = dsprites.FACTOR_NAMES + COLOR_FACTOR_NAMES
FACTOR_SIZES = dsprites.FACTOR_SIZES + (len(COLOR_LEVELS),) * 3
# Seed of the per-record colours; fixed so the data set is the same everywhere.
_RECORD_COLOR_SEED = 20180410  # Burgess et al.'s arXiv date.


def record_colors(num_records):
  """Colour factor indices of records 0..num_records-1: int64 (n, 3)."""
  rng = np.random.default_rng(_RECORD_COLOR_SEED)
  return rng.integers(0, len(COLOR_LEVELS), size=(num_records, 3))


def colorize(images, color_indices):
  """Colours grey images.

  Args:
    images: float (n, H, W, 1) in [0, 1] (binary for dSprites).
    color_indices: int (n, 3) indices into COLOR_LEVELS, columns (r, g, b).

  Returns:
    float32 (n, H, W, 3): images · colour.

  Raises:
    ValueError: if a colour index is out of range (naming the channel).
  """
  color_indices = np.asarray(color_indices)
  if color_indices.shape != (len(images), 3):
    raise ValueError(f'color_indices must have shape ({len(images)}, 3), got '
                     f'{color_indices.shape}')
  color_indices = ground_truth.validated_factors(
      color_indices, COLOR_FACTOR_NAMES, (len(COLOR_LEVELS),) * 3,
      first_column=len(dsprites.FACTOR_NAMES))
  colors = COLOR_LEVELS[color_indices]
  return np.asarray(images, np.float32) * colors[:, None, None, :]


class ColoredImages:
  """Another reader's grey images, record i coloured with its fixed colour."""

  def __init__(self, grey_images):
    self._grey = grey_images
    self.num_records = grey_images.num_records
    self.colors = record_colors(self.num_records)

  def read_images(self, record_indices):
    record_indices = np.asarray(record_indices)
    return colorize(self._grey.read_images(record_indices),
                    self.colors[record_indices])

  def read_labels(self, names):
    """Labels of the grey records, then the colour columns red/green/blue."""
    grey_names = [n for n in names if n not in COLOR_FACTOR_NAMES]
    grey = dict(zip(grey_names, self._grey.read_labels(grey_names).T))
    for column, name in enumerate(COLOR_FACTOR_NAMES):
      grey[name] = self.colors[:, column]
    return np.stack([grey[name] for name in names], axis=1)


class ColoredGroundTruth(ground_truth.GroundTruthData):
  """Coloured dSprites: a dSprites ground truth plus (red, green, blue)."""

  def __init__(self, grey):
    """Args: grey: the dSprites GroundTruthData whose images are coloured."""
    shape = tuple(grey.observation_shape[:-1]) + (3,)
    super().__init__(
        tuple(grey.factor_names) + COLOR_FACTOR_NAMES,
        list(grey.factors_num_values) + list(FACTOR_SIZES[-3:]), shape)
    self._grey = grey

  def sample_observations_from_factors(self, factors, random_state):
    factors = self.validated_factors(factors)
    grey_columns = self._grey.num_factors
    images = self._grey.sample_observations_from_factors(
        factors[:, :grey_columns], random_state)
    return colorize(images, factors[:, grey_columns:])


def _colored(source):
  """`source` of grey dSprites, its records and ground truth coloured."""

  def open_fn(subset, data_dir):
    grey = source.open_fn(subset, data_dir)
    return dataset_spec.Opened(
        builder=grey.builder, images=ColoredImages(grey.images),
        make_ground_truth=lambda: ColoredGroundTruth(grey.make_ground_truth()))

  return dataclasses.replace(source, open_fn=open_fn)


SPEC = dataclasses.replace(
    dsprites_tfds.DSPRITES,
    name='color_dsprites',
    variants=('color_dsprites', 'color_dsprites/tiny'),
    sources=tuple(_colored(source)
                  for source in dsprites_tfds.DSPRITES.sources),
    factor_names=FACTOR_NAMES,
    factor_sizes=FACTOR_SIZES,
    image_shape=dsprites_tfds.IMAGE_SHAPE[:2] + (3,),
    # Burgess et al. (2018) Fig. 4a; dSprites' schedule and latents (colour
    # adds three 6-level factors, log 216 = 5.4 nats, well inside 25).
    config_settings=dict(latent_dim=10, capacity_max=25.0),
)
