r"""dSprites' records: the TFDS builders that need no TensorFlow, and the specs.

Two builders write the same records from different image sources:

  dsprites_procedural  drawn locally by `bvae_jax.datasets.dsprites.render`;
                       no download.
  dsprites_official    the official file of Matthey et al. (2017),
                       `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` from
                       github.com/deepmind/dsprites-dataset, downloaded by
                       TFDS's download manager (OFFICIAL_NPZ_URL).

Their features carry the names and dtypes of the TFDS catalog builder
`dsprites`, so code written against one reads the others unchanged (only
`image` differs in kind: a zlib `Tensor` here, a PNG `Image` there, both uint8
(64, 64, 1) in {0, 1}). Unlike the catalog builder, which shuffles, record i is
image i of the official file, so factors map to records by arithmetic
(`dsprites.factors_to_index`), with no search.

Nothing needs TensorFlow: features are `Tensor`/`ClassLabel` (no TF encoder,
where the catalog builder encodes PNGs with TensorFlow), and the files are
array_record, read with `builder.as_data_source()`. The .npz is read as a
stream, a chunk of images at a time (`_RENDER_CHUNK`: 8,192 images, 32 MiB as
uint8), never the 2.8 GiB of all 737,280 decompressed.

The registry's data sets `dsprites` (DSPRITES) and `dsprites_procedural`
(DSPRITES_PROCEDURAL) are these records. DSPRITES has three sources, tried in
order by the registry's data-source rule: the TFDS catalog `dsprites` if
prepared as array_record (full set only), `dsprites_official` (prepared, or
downloading the file now), and the procedural renderer.

Configs (both builders):
  full  All 737,280 images, record i = image i of the original file. Default.
  tiny  Every 257th image (2,869 images). 257 is prime to every factor size, so
        the subset holds every value of every factor; for tests and smoke runs.

Preparing writes one array_record shard (~270 MiB for `full`, in about 20 s
on 2 idle CPU cores). TFDS's generic path encodes each example feature by
feature in Python (~125 µs an example, 95 s for `full`), and even its
ExampleSerializer alone, given examples already encoded, is 4-5x slower than
needed (218 s against 44-55 s, back to back on a loaded 2-core machine). So
`_serialized_splits` joins each record from pieces, most of them made once by
the ExampleSerializer (`_PieceSerializer`); `_generate_examples` is kept as
the reference the tests compare those records with.

Usage (the input pipeline prepares on first use):

  builder = DspritesProcedural(config='tiny', data_dir=data_dir)  # Or DspritesOfficial.
  builder.download_and_prepare()
  source = builder.as_data_source()['train']
  source[0]['image']  # uint8 (64, 64, 1)
"""

import abc
import dataclasses
import urllib.error
import urllib.request
import zipfile
import zlib

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer
from tensorflow_datasets.proto import tf_example_pb2
from tensorflow_datasets.proto import tf_feature_pb2

from bvae_jax.datasets import array_record_builder
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import records
from bvae_jax.datasets import tfds_catalog

# Images rendered at a time while generating: big enough that rendering costs
# nothing next to serialising, small enough to stay a few MB.
_RENDER_CHUNK = 8192
# Catalog feature-name suffix of each factor, in dsprites.FACTOR_NAMES order.
CATALOG_SUFFIXES = ('shape', 'scale', 'orientation', 'x_position',
                    'y_position')
# The label feature of each factor, in the catalog and in our builders.
CATALOG_LABELS = tuple(f'label_{suffix}' for suffix in CATALOG_SUFFIXES)
IMAGE_SHAPE = (dsprites.IMAGE_SIZE, dsprites.IMAGE_SIZE, 1)
# zlib level of the stored images. Level 1 is twice as fast as the default 6
# both ways (7 vs 16 µs to compress, 7 vs 13 µs to decompress) for 95 instead
# of 64 bytes an image; reading speed matters more than 20 MB of disk.
_ZLIB_LEVEL = 1
# The official file (Matthey et al. 2017). GitHub redirects the old
# deepmind/ path to google-deepmind/.
OFFICIAL_NPZ_URL = ('https://github.com/deepmind/dsprites-dataset/raw/master/'
                    'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz')
# Arrays of the official .npz that we read. `latents_classes` has a leading
# constant `color` column.
_NPZ_IMAGES = 'imgs.npy'
_NPZ_CLASSES = 'latents_classes.npy'
# Seconds to wait for the official dSprites file's server before falling back.
_PROBE_TIMEOUT_S = 10


class DspritesFileError(ValueError):
  """The official dSprites file is missing, truncated or not dSprites."""


@dataclasses.dataclass(eq=False)
class DspritesSubsetConfig(tfds.core.BuilderConfig):
  """Which images a config holds.

  Attributes:
    stride: keep image indices 0, stride, 2·stride, ... of the full set.
  """
  stride: int = 1

  def image_indices(self):
    """Indices, into the full set, of the images this config holds."""
    return np.arange(0, dsprites.NUM_IMAGES, self.stride)


class _DspritesBuilder(array_record_builder.ArrayRecordBuilder, abc.ABC):
  """Writes dSprites records in the order of the official file.

  Subclasses say where the images come from (`_image_chunks`). Abstract, so
  TFDS does not register it as a data set.
  """

  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [
      DspritesSubsetConfig(
          name='full', stride=1,
          description='All 737,280 images in the order of the original file.'),
      DspritesSubsetConfig(
          name='tiny', stride=257,
          description='Every 257th image (2,869): every factor value occurs.'),
  ]
  DEFAULT_CONFIG_NAME = 'full'

  @abc.abstractmethod
  def _image_chunks(self, dl_manager):
    """Yields (image indices, factors, uint8 images (n, 64, 64, 1)) in order.

    Covers `self.builder_config.image_indices()`, in chunks.
    """

  def _info(self):
    features = {
        # zlib: a binary sprite image shrinks ~40x, to ~100 bytes.
        'image': tfds.features.Tensor(
            shape=(64, 64, 1), dtype=np.uint8, encoding='zlib'),
    }
    for suffix, size in zip(CATALOG_SUFFIXES, dsprites.FACTOR_SIZES):
      features[f'label_{suffix}'] = tfds.features.ClassLabel(num_classes=size)
    for suffix in CATALOG_SUFFIXES:
      features[f'value_{suffix}'] = tfds.features.Tensor(
          shape=(), dtype=np.float32)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage='https://github.com/deepmind/dsprites-dataset',
        # Record i is the i-th image of the config, in the original order.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(dl_manager)}

  def _generate_examples(self, dl_manager):
    """Yields (image index, record); TFDS's generic path, kept as reference."""
    for indices, factors, images in self._image_chunks(dl_manager):
      for index, image, row in zip(indices.tolist(), images, factors.tolist()):
        yield index, example_dict(image, row)

  def _serialized_splits(self, dl_manager):
    """The 'train' records, streamed a chunk of images at a time."""
    serializer = _PieceSerializer(self.info.features)
    return {'train': (
        record for _, factors, images in self._image_chunks(dl_manager)
        for record in serializer.serialize_chunk(factors, images))}


class DspritesProcedural(_DspritesBuilder):
  """dSprites rendered procedurally (see bvae_jax/datasets/dsprites.py)."""

  # A new renderer is a new version, so records prepared by an older one are
  # never read as this one's.
  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Whole-pixel positions, areas fitted to the real images.',
      '2.0.0': 'Geometry fitted to real frames: sub-pixel positions and '
               'outlines sampled at pixel centres (best-match IoU median 1.0).',
  }

  def _image_chunks(self, dl_manager):
    del dl_manager  # Nothing to download.
    indices = self.builder_config.image_indices()
    for start in range(0, len(indices), _RENDER_CHUNK):
      chunk = indices[start:start + _RENDER_CHUNK]
      factors = dsprites.index_to_factors(chunk)
      yield chunk, factors, dsprites.render(factors)


class DspritesOfficial(_DspritesBuilder):
  """dSprites from the official .npz file (Matthey et al. 2017)."""

  VERSION = tfds.core.Version('1.0.0')

  def _image_chunks(self, dl_manager):
    path = dl_manager.download(OFFICIAL_NPZ_URL)
    yield from official_npz_chunks(path, self.builder_config.image_indices())


def official_npz_chunks(path, image_indices, chunk_size=_RENDER_CHUNK):
  """Streams images of the official dSprites .npz, checking its contents.

  The file's factor classes must be the mixed-radix order of
  `dsprites.index_to_factors` (the official file's order); its `imgs` array is
  read from the zip member a chunk at a time, never whole.

  Args:
    path: the .npz file.
    image_indices: increasing image indices to yield.
    chunk_size: images read per chunk.

  Yields:
    (indices, factors (n, 5) int64, uint8 images (n, 64, 64, 1)) covering
    `image_indices` in order.

  Raises:
    DspritesFileError: naming `path`, if it is not a zip, lacks an array,
      holds arrays of the wrong shape or dtype, or has factors out of order.
  """
  path = str(path)
  image_indices = np.asarray(image_indices, np.int64)
  expected_images = (dsprites.NUM_IMAGES, dsprites.IMAGE_SIZE,
                     dsprites.IMAGE_SIZE)
  image_bytes = dsprites.IMAGE_SIZE * dsprites.IMAGE_SIZE
  try:
    with zipfile.ZipFile(path) as archive:
      members = set(archive.namelist())
      for member in (_NPZ_IMAGES, _NPZ_CLASSES):
        if member not in members:
          raise DspritesFileError(
              f'{path} has no array {member[:-4]!r} (holds {sorted(members)}); '
              f'expected the official dSprites file from {OFFICIAL_NPZ_URL}')
      with archive.open(_NPZ_CLASSES) as stream:
        classes = np.lib.format.read_array(stream)
      if (classes.shape != (dsprites.NUM_IMAGES, 6) or not np.array_equal(
          classes[:, 1:],
          dsprites.index_to_factors(np.arange(dsprites.NUM_IMAGES)))):
        raise DspritesFileError(
            f'{path}: latents_classes (shape {classes.shape}) are not the '
            f'{dsprites.NUM_IMAGES:,} factor rows of the official file in order')
      with archive.open(_NPZ_IMAGES) as stream:
        shape, dtype = _npy_header(stream)
        if shape != expected_images or dtype != np.uint8:
          raise DspritesFileError(
              f'{path}: imgs has shape {shape} and dtype {dtype}, expected '
              f'{expected_images} uint8')
        for start in range(0, dsprites.NUM_IMAGES, chunk_size):
          count = min(chunk_size, dsprites.NUM_IMAGES - start)
          data = stream.read(count * image_bytes)
          if len(data) != count * image_bytes:
            raise DspritesFileError(f'{path}: imgs ends after image {start}')
          wanted = image_indices[(image_indices >= start)
                                 & (image_indices < start + count)]
          if wanted.size:
            images = np.frombuffer(data, np.uint8).reshape(
                count, *expected_images[1:])[wanted - start]
            yield wanted, classes[wanted, 1:], images[..., None]
  except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
    raise DspritesFileError(
        f'{path} is not a readable dSprites .npz ({error}); expected the '
        f'official file from {OFFICIAL_NPZ_URL}') from error


def _npy_header(stream):
  """Reads the header of a .npy stream; returns (shape, dtype)."""
  version = np.lib.format.read_magic(stream)
  read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                 (2, 0): np.lib.format.read_array_header_2_0}.get(version)
  if read_header is None:
    raise DspritesFileError(f'unsupported .npy version {version}')
  shape, fortran_order, dtype = read_header(stream)
  if fortran_order:
    raise DspritesFileError('imgs is stored in Fortran order')
  return shape, dtype


def example_dict(image, factor_row):
  """Returns the catalog-style feature dict for one image.

  Args:
    image: uint8 (64, 64, 1).
    factor_row: the image's 5 factor indices.
  """
  record = {'image': image}
  for column, suffix in enumerate(CATALOG_SUFFIXES):
    factor = factor_row[column]
    record[f'label_{suffix}'] = factor
    record[f'value_{suffix}'] = np.float32(dsprites.FACTOR_VALUES[column][factor])
  return record


def builder(builder_config='full', data_dir=None):
  """The procedural builder of TFDS config `builder_config` in `data_dir`."""
  return DspritesProcedural(config=builder_config, data_dir=data_dir)


def official_builder(builder_config='full', data_dir=None):
  """The official-file builder of TFDS config `builder_config` in `data_dir`."""
  return DspritesOfficial(config=builder_config, data_dir=data_dir)


class _PieceSerializer:
  """Serialises records by joining serialised Examples of their features.

  Protocol buffers parse concatenated serialised messages as one message, the
  merge of them all, and an Example's feature map merges entry by entry; so a
  record can be the concatenation of small serialised Examples, one per group
  of features. TensorFlow's Example parser does the same (its ParseExample
  loops over "multiple serialized Example protos merged together as
  strings"). The label_* and value_* pair of a factor depends only on the
  factor's value, so TFDS's ExampleSerializer makes its piece once per value
  (113 pieces); per record only the zlib image and its piece are made, with
  the protobuf classes that ExampleSerializer itself fills (made through it,
  the image piece took preparing `full` from 44-55 s to 92 s). The record
  parses to the Example TFDS's serializer gives for the whole record (tests
  check it).
  """

  def __init__(self, features):
    """Serialises the label pieces.

    Args:
      features: the builder's FeaturesDict.
    """
    specs = features.get_serialized_info()
    # _label_pieces[column][factor] = serialised Example holding the label_*
    # and value_* features of that factor value.
    self._label_pieces = []
    for column, suffix in enumerate(CATALOG_SUFFIXES):
      label, value = f'label_{suffix}', f'value_{suffix}'
      pair = example_serializer.ExampleSerializer(
          {label: specs[label], value: specs[value]})
      self._label_pieces.append([
          pair.serialize_example({label: factor, value: np.float32(x)})
          for factor, x in enumerate(dsprites.FACTOR_VALUES[column])])

  def serialize_chunk(self, factors, images):
    """Yields the serialised Example of each (factor row, image)."""
    for row, image in zip(factors.tolist(), images):
      image_piece = tf_example_pb2.Example(
          features=tf_feature_pb2.Features(feature={
              'image': tf_feature_pb2.Feature(
                  bytes_list=tf_feature_pb2.BytesList(
                      value=[zlib.compress(image.tobytes(), _ZLIB_LEVEL)]))
          })).SerializeToString()
      yield b''.join([image_piece] + [
          pieces[factor] for pieces, factor in zip(self._label_pieces, row)])


# ------------------------------------------------------- the data sets


def _unreachable_reason(url):
  """None if `url`'s server answers within the timeout, else why not."""
  try:
    request = urllib.request.Request(url, method='HEAD')
    with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_S):
      return None
  except (urllib.error.URLError, OSError, ValueError) as error:
    return f'{type(error).__name__}: {getattr(error, "reason", error)}'


def _open_catalog(subset, data_dir):
  """The TFDS catalog `dsprites`, if prepared as array_record (full only)."""
  del subset  # The source holds 'full' only (its Source says so).
  builder = tfds_catalog.prepared_builder('dsprites', data_dir)
  images = records.DataSourceImages(builder, max_pixel_value=1)
  # The catalog shuffles: factors find their record through a table built
  # from every record's labels.
  return dataset_spec.Opened(
      builder=builder, images=images,
      make_ground_truth=lambda: ground_truth.RecordGroundTruth.from_labels(
          dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, IMAGE_SHAPE, images,
          images.read_labels(CATALOG_LABELS),
          source_name=builder.info.full_name))


def _open_official(subset, data_dir):
  """`dsprites_official`, downloading the official file if not prepared."""
  builder = official_builder(subset, data_dir)
  if not builder.is_prepared():
    unreachable = _unreachable_reason(OFFICIAL_NPZ_URL)
    if unreachable:
      raise dataset_spec.SourceUnavailableError(
          f'the official file cannot be downloaded ({unreachable})')
    try:
      dataset_spec.prepare(builder, f'downloading {OFFICIAL_NPZ_URL}')
    except DspritesFileError:
      raise  # A wrong or corrupt real file is an error, not a fallback.
    except Exception as error:  # pylint: disable=broad-except
      raise dataset_spec.SourceUnavailableError(
          f'downloading the official file failed ({error})') from error
  images = records.ArrayRecordImages(builder, max_pixel_value=1)

  def make_ground_truth():
    if subset == 'full':
      # Record i is image i of the official file, whose order is the
      # mixed-radix index of its factors: the table is the identity.
      return ground_truth.RecordGroundTruth(
          dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, IMAGE_SHAPE, images,
          source_name=builder.info.full_name)
    return ground_truth.RecordGroundTruth.from_labels(
        dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, IMAGE_SHAPE, images,
        images.read_labels(CATALOG_LABELS), source_name=builder.info.full_name)

  return dataset_spec.Opened(builder=builder, images=images,
                             make_ground_truth=make_ground_truth)


def _open_procedural(subset, data_dir):
  """`dsprites_procedural`: every image drawn here, no network."""
  builder = dataset_spec.prepare(
      DspritesProcedural(config=subset, data_dir=data_dir))
  return dataset_spec.Opened(
      builder=builder,
      images=records.ArrayRecordImages(builder, max_pixel_value=1),
      make_ground_truth=lambda: ground_truth.RenderedGroundTruth(
          dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, IMAGE_SHAPE,
          dsprites.render, max_pixel_value=1))


CATALOG_SOURCE = dataset_spec.Source(
    'tfds_catalog', 'real', _open_catalog,
    'TFDS catalog {tfds_name} in {data_dir}', subsets=('full',))
OFFICIAL_SOURCE = dataset_spec.Source(
    'official', 'real', _open_official,
    'official file ({tfds_name} in {data_dir})')
PROCEDURAL_SOURCE = dataset_spec.Source(
    'procedural', 'procedural', _open_procedural,
    'procedural renderer ({tfds_name} in {data_dir}; {why})')

DSPRITES = dataset_spec.DatasetSpec(
    name='dsprites',
    variants=('dsprites', 'dsprites/tiny'),
    sources=(CATALOG_SOURCE, OFFICIAL_SOURCE, PROCEDURAL_SOURCE),
    factor_names=dsprites.FACTOR_NAMES,
    factor_sizes=dsprites.FACTOR_SIZES,
    image_shape=IMAGE_SHAPE,
    # Burgess et al. (2018) Sec. 5: C 0 -> 25 nats, 10 latents.
    config_settings=dict(latent_dim=10, capacity_max=25.0),
    no_real_data_help=(
        'Prepare it where the network reaches GitHub (python -c "from '
        'bvae_jax.datasets import dsprites_tfds; '
        "dsprites_tfds.official_builder('{subset}', "
        'DATA_DIR).download_and_prepare()") and copy DATA_DIR here, or set '
        "config.dataset_source='procedural'."),
)

# The renderer only, never the network; subset 'full' is also named.
DSPRITES_PROCEDURAL = dataclasses.replace(
    DSPRITES, name='dsprites_procedural',
    variants=('dsprites_procedural', 'dsprites_procedural/full',
              'dsprites_procedural/tiny'),
    sources=(PROCEDURAL_SOURCE,), no_real_data_help='')
