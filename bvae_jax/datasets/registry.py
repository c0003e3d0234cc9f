r"""Data sets by name: where their records come from, and their ground truth.

`open_dataset(config)` turns `config.dataset` (and `config.dataset_source`,
`config.data_dir`) into a `Dataset`: a prepared TFDS builder, a reader of its
images by record index, and, where the factors are known, a
`ground_truth.GroundTruthData` for the metrics.

  name                 records                                    factors
  dsprites[/tiny]      real dSprites if obtainable, else drawn    5
  color_dsprites[/tiny] dsprites, each record in a fixed colour   8
  dsprites_procedural[/tiny]  always drawn (no download)          5
  gaussian_blobs       drawn (Burgess et al. 2018, Fig. 2)        2
  chairs               3D Chairs, manual download (chairs3d)      3
  shapes3d             TFDS catalog `shapes3d`                    6
  celeb_a              TFDS catalog `celeb_a`, 64x64 crop         none

Source of `dsprites` (config.dataset_source):
  'auto'        the first that works of: the TFDS catalog `dsprites` prepared
                in data_dir as array_record; our `dsprites_official` builder
                prepared in data_dir; `dsprites_official` downloading the
                official file now; else the procedural renderer. One log line
                says which, and why when it falls back.
  'real'        the same without the fallback: an error if no real data.
  'procedural'  the renderer, never the network.
The source chosen is in `Dataset.source` and `Dataset.describe()`, which
training writes to `DIR/dataset.json` and to the saved config.

Every TFDS builder prepares atomically (into a temporary directory renamed on
success), so a failure leaves nothing half-written in data_dir.
"""

import dataclasses
import time
from typing import Any, Callable
import urllib.error
import urllib.request

from absl import logging
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters

from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds
from bvae_jax.datasets import gaussian_blobs
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import records

DATASET_NAMES = (
    'dsprites', 'dsprites/tiny', 'color_dsprites', 'color_dsprites/tiny',
    'dsprites_procedural', 'dsprites_procedural/full',
    'dsprites_procedural/tiny', 'gaussian_blobs', 'chairs', 'shapes3d',
    'celeb_a')
DATASET_SOURCES = ('auto', 'real', 'procedural')
# Seconds to wait for the official dSprites file's server before falling back.
_PROBE_TIMEOUT_S = 10
# CelebA (218x178): the central 148x148 square (rows 35-182, columns 15-162),
# which holds the face, is resized to 64x64 with an area filter.
CELEBA_CROP = (35, 15, 148)
_DSPRITES_CATALOG_LABELS = ('label_shape', 'label_scale', 'label_orientation',
                            'label_x_position', 'label_y_position')
_SHAPES3D_LABELS = ('label_floor_hue', 'label_wall_hue', 'label_object_hue',
                    'label_scale', 'label_shape', 'label_orientation')
_CHAIRS_LABELS = ('label_chair', 'label_azimuth', 'label_elevation')


class DatasetUnavailableError(RuntimeError):
  """The data set's records cannot be obtained here."""


@dataclasses.dataclass
class Dataset:
  """An opened data set.

  Attributes:
    name: the config name, e.g. 'color_dsprites'.
    source: where the records come from, e.g. 'procedural', 'official',
      'tfds_catalog'.
    builder: the prepared TFDS builder holding the records.
    images: reader with `num_records` and `read_images(record_indices)`.
    observation_shape: (H, W, C).
    make_ground_truth: builds the GroundTruthData; None when the factors are
      unknown.
  """
  name: str
  source: str
  builder: Any
  images: Any
  observation_shape: tuple[int, int, int]
  make_ground_truth: Callable[[], ground_truth.GroundTruthData] | None
  _ground_truth: Any = dataclasses.field(default=None, repr=False)

  @property
  def num_records(self):
    return self.images.num_records

  def ground_truth(self) -> ground_truth.GroundTruthData:
    """The data set's ground truth, built on first use.

    Raises:
      NoGroundTruthError: for a data set without known factors.
    """
    if self.make_ground_truth is None:
      with_factors = [n for n in DATASET_NAMES if n not in _WITHOUT_FACTORS]
      raise ground_truth.NoGroundTruthError(
          f'data set {self.name!r} has no ground-truth factors, so the '
          f'disentanglement metrics cannot use it; data sets with factors: '
          f'{with_factors}')
    if self._ground_truth is None:
      self._ground_truth = self.make_ground_truth()
    return self._ground_truth

  def describe(self) -> dict[str, Any]:
    """JSON-ready facts of the data set, saved with every run."""
    return {
        'name': self.name, 'source': self.source,
        'tfds_name': self.builder.info.full_name,
        'data_dir': str(self.builder.data_dir),
        'num_records': int(self.num_records),
        'observation_shape': list(self.observation_shape),
        'has_ground_truth': self.make_ground_truth is not None,
    }


_WITHOUT_FACTORS = ('celeb_a',)


def open_dataset(config) -> Dataset:
  """Opens `config.dataset`, preparing its TFDS builder on first use.

  Args:
    config: ConfigDict with `dataset`, optionally `dataset_source` (default
      'auto') and `data_dir` (None: TFDS's default).

  Raises:
    ValueError: on an unknown name (listing the known ones) or a source the
      data set does not have.
    DatasetUnavailableError: when the records cannot be obtained (says how to
      get them).
  """
  name = config.dataset
  source = config.get('dataset_source', 'auto')
  data_dir = config.get('data_dir')
  if name not in DATASET_NAMES:
    raise ValueError(
        f'unknown dataset {name!r}; known: {", ".join(DATASET_NAMES)}')
  if source not in DATASET_SOURCES:
    raise ValueError(f'config.dataset_source must be one of {DATASET_SOURCES}, '
                     f'got {source!r}')
  family, _, subset = name.partition('/')
  subset = subset or 'full'
  if family in ('dsprites', 'color_dsprites', 'dsprites_procedural'):
    if family == 'dsprites_procedural':
      if source == 'real':
        raise ValueError(f'dataset {name!r} is procedural; for real dSprites '
                         "use dataset='dsprites' with dataset_source='real'")
      source = 'procedural'
    grey = _open_dsprites(subset, source, data_dir)
    if family != 'color_dsprites':
      return dataclasses.replace(grey, name=name)
    return Dataset(
        name=name, source=grey.source, builder=grey.builder,
        images=records.ColoredImages(grey.images),
        observation_shape=grey.observation_shape[:2] + (3,),
        make_ground_truth=lambda: ground_truth.ColoredGroundTruth(
            grey.ground_truth()))
  if source != 'auto':
    expected = 'procedural' if family == 'gaussian_blobs' else 'real'
    if source != expected:
      raise ValueError(
          f"config.dataset_source={source!r}: data set {name!r} has only a "
          f"{expected} source; use 'auto'")
  return _OPENERS[family](data_dir)


def prepare(builder, what=None):
  """Prepares `builder` unless it already is; logs the time it took."""
  if not builder.is_prepared():
    start = time.perf_counter()
    logging.info('Preparing %s in %s (first use)%s.', builder.info.full_name,
                 builder.data_dir, f': {what}' if what else '')
    builder.download_and_prepare()
    logging.info('Prepared %s in %.1f s.', builder.info.full_name,
                 time.perf_counter() - start)
  return builder


# ------------------------------------------------------------------ dSprites


def _open_dsprites(subset, source, data_dir):
  """dSprites (subset 'full' or 'tiny') from the source rule of the docstring."""
  if source == 'procedural':
    return _procedural_dsprites(subset, data_dir, why='as configured')
  reasons = []
  if subset == 'full':
    catalog = _prepared_catalog_builder('dsprites', data_dir, reasons)
    if catalog is not None:
      logging.info('Data set dsprites: source = TFDS catalog %s in %s.',
                   catalog.info.full_name, catalog.data_dir)
      return _catalog_dsprites(catalog)
  official = dsprites_tfds.official_builder(subset, data_dir)
  if not official.is_prepared():
    unreachable = _unreachable_reason(dsprites_tfds.OFFICIAL_NPZ_URL)
    if unreachable:
      reasons.append(f'the official file cannot be downloaded ({unreachable})')
    else:
      try:
        prepare(official, f'downloading {dsprites_tfds.OFFICIAL_NPZ_URL}')
      except dsprites_tfds.DspritesFileError:
        raise  # A wrong or corrupt real file is an error, not a fallback.
      except Exception as error:  # pylint: disable=broad-except
        reasons.append(f'downloading the official file failed ({error})')
  if official.is_prepared():
    logging.info('Data set dsprites: source = official file (%s in %s).',
                 official.info.full_name, official.data_dir)
    return Dataset(
        name='dsprites', source='official', builder=official,
        images=records.ArrayRecordImages(official, max_pixel_value=1),
        observation_shape=(64, 64, 1),
        make_ground_truth=_official_ground_truth(official, subset))
  why = '; '.join(reasons)
  if source == 'real':
    raise DatasetUnavailableError(
        f'dsprites: no real data ({why}). Prepare it where the network '
        f'reaches GitHub (python -c "from bvae_jax.datasets import '
        f'dsprites_tfds; dsprites_tfds.official_builder(\'{subset}\', '
        f'DATA_DIR).download_and_prepare()") and copy DATA_DIR here, or set '
        "config.dataset_source='procedural'.")
  return _procedural_dsprites(subset, data_dir, why=f'fallback: {why}')


def _procedural_dsprites(subset, data_dir, why):
  builder = prepare(dsprites_tfds.builder(subset, data_dir))
  logging.info('Data set dsprites: source = procedural renderer (%s in %s; '
               '%s).', builder.info.full_name, builder.data_dir, why)
  return Dataset(
      name='dsprites', source='procedural', builder=builder,
      images=records.ArrayRecordImages(builder, max_pixel_value=1),
      observation_shape=(64, 64, 1),
      make_ground_truth=lambda: ground_truth.RenderedGroundTruth(
          dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, (64, 64, 1),
          dsprites.render, max_pixel_value=1))


def _official_ground_truth(builder, subset):
  images = records.ArrayRecordImages(builder, max_pixel_value=1)
  names = dsprites.FACTOR_NAMES
  sizes = dsprites.FACTOR_SIZES
  if subset == 'full':
    # Record i is image i of the official file, whose order is the
    # mixed-radix index of its factors: the table is the identity.
    return lambda: ground_truth.RecordGroundTruth(
        names, sizes, (64, 64, 1), images,
        source_name=builder.info.full_name)
  return lambda: ground_truth.RecordGroundTruth.from_labels(
      names, sizes, (64, 64, 1), images,
      images.read_labels(['label_' + s for s in dsprites_tfds.CATALOG_SUFFIXES]),
      source_name=builder.info.full_name)


def _catalog_dsprites(builder):
  images = records.DataSourceImages(builder, max_pixel_value=1)
  return Dataset(
      name='dsprites', source='tfds_catalog', builder=builder, images=images,
      observation_shape=(64, 64, 1),
      make_ground_truth=lambda: ground_truth.RecordGroundTruth.from_labels(
          dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, (64, 64, 1), images,
          images.read_labels(_DSPRITES_CATALOG_LABELS),
          source_name=builder.info.full_name))


def _unreachable_reason(url):
  """None if `url`'s server answers within the timeout, else why not."""
  try:
    request = urllib.request.Request(url, method='HEAD')
    with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_S):
      return None
  except (urllib.error.URLError, OSError, ValueError) as error:
    return f'{type(error).__name__}: {getattr(error, "reason", error)}'


def _prepared_catalog_builder(name, data_dir, reasons):
  """The catalog builder if prepared in data_dir and readable, else None."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as error:  # pylint: disable=broad-except
    reasons.append(f'TFDS catalog {name!r} unavailable ({error})')
    return None
  if not builder.is_prepared():
    reasons.append(f'TFDS catalog {name!r} not prepared in {builder.data_dir}')
    return None
  if builder.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
    reasons.append(
        f'TFDS catalog {name!r} in {builder.data_dir} is stored as '
        f'{builder.info.file_format.value}; random access needs array_record')
    return None
  return builder


# -------------------------------------------------------- other data sets


def _open_gaussian_blobs(data_dir):
  builder = prepare(gaussian_blobs.GaussianBlobs(data_dir=data_dir))
  shape = (gaussian_blobs.IMAGE_SIZE, gaussian_blobs.IMAGE_SIZE, 1)
  return Dataset(
      name='gaussian_blobs', source='procedural', builder=builder,
      images=records.ArrayRecordImages(
          builder, max_pixel_value=gaussian_blobs.MAX_PIXEL_VALUE),
      observation_shape=shape,
      make_ground_truth=lambda: ground_truth.RenderedGroundTruth(
          gaussian_blobs.FACTOR_NAMES, gaussian_blobs.FACTOR_SIZES, shape,
          gaussian_blobs.render, gaussian_blobs.MAX_PIXEL_VALUE))


def _open_chairs(data_dir):
  # Imported here: the chairs builder loads PIL, which nothing else needs.
  from bvae_jax.datasets import chairs_tfds  # pylint: disable=g-import-not-at-top
  builder = chairs_tfds.Chairs3d(data_dir=data_dir)
  # A missing, truncated or wrong archive raises ChairsArchiveError, naming
  # the file and the expected place.
  prepare(builder, 'reading the manually downloaded rendered_chairs.tar')
  images = records.ArrayRecordImages(builder, max_pixel_value=255)
  num_chairs = chairs_tfds.num_chairs(builder.info)
  return Dataset(
      name='chairs', source='real', builder=builder, images=images,
      observation_shape=(64, 64, 3),
      make_ground_truth=lambda: ground_truth.RecordGroundTruth.from_labels(
          ('chair', 'azimuth', 'elevation'),
          (num_chairs, len(chairs_tfds.AZIMUTHS), len(chairs_tfds.ELEVATIONS)),
          (64, 64, 3), images, images.read_labels(_CHAIRS_LABELS),
          source_name=builder.info.full_name))


def _catalog_builder(name, data_dir):
  """A prepared catalog builder (array_record), or an error saying how."""
  builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
  try:
    prepare(builder, 'TFDS catalog data set')
  except Exception as error:  # pylint: disable=broad-except
    raise DatasetUnavailableError(
        f'{name}: TFDS could not prepare it in {builder.data_dir} '
        f'({type(error).__name__}: {error}). Preparing needs network access '
        f'and TensorFlow (TFDS encodes its images with it: pip install -r '
        f'requirements-catalog.txt); or copy a data dir where {name} is '
        'prepared as array_record and set config.data_dir.') from error
  if builder.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
    raise DatasetUnavailableError(
        f'{name} in {builder.data_dir} is stored as '
        f'{builder.info.file_format.value}; bvae_jax reads array_record. '
        f'Prepare it again with tfds.builder({name!r}, '
        "file_format='array_record').download_and_prepare().")
  return builder


def _open_shapes3d(data_dir):
  builder = _catalog_builder('shapes3d', data_dir)
  images = records.DataSourceImages(builder, max_pixel_value=255)
  sizes = [builder.info.features[label].num_classes
           for label in _SHAPES3D_LABELS]
  return Dataset(
      name='shapes3d', source='tfds_catalog', builder=builder, images=images,
      observation_shape=(64, 64, 3),
      make_ground_truth=lambda: ground_truth.RecordGroundTruth.from_labels(
          [label[len('label_'):] for label in _SHAPES3D_LABELS], sizes,
          (64, 64, 3), images, images.read_labels(_SHAPES3D_LABELS),
          source_name=builder.info.full_name))


def celeba_crop_and_resize(image):
  """uint8 (218, 178, 3) CelebA image -> uint8 (64, 64, 3); see CELEBA_CROP."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  top, left, size = CELEBA_CROP
  square = np.ascontiguousarray(image[top:top + size, left:left + size])
  return np.asarray(Image.fromarray(square).resize((64, 64), Image.BOX))


def _open_celeb_a(data_dir):
  builder = _catalog_builder('celeb_a', data_dir)
  return Dataset(
      name='celeb_a', source='tfds_catalog', builder=builder,
      images=records.DataSourceImages(builder, max_pixel_value=255,
                                      preprocess=celeba_crop_and_resize),
      observation_shape=(64, 64, 3), make_ground_truth=None)


_OPENERS = {
    'gaussian_blobs': _open_gaussian_blobs,
    'chairs': _open_chairs,
    'shapes3d': _open_shapes3d,
    'celeb_a': _open_celeb_a,
}
