r"""TFDS builder `dsprites_procedural`: dSprites drawn locally, no download.

The images come from `bvae_jax.datasets.dsprites.render`; the features carry
the names and dtypes of the TFDS catalog builder `dsprites`, so code written
against this data set reads the real one unchanged (only `image` differs in
kind: a zlib `Tensor` here, a PNG `Image` there, both uint8 (64, 64, 1) in
{0, 1}).

Nothing needs TensorFlow: features are `Tensor`/`ClassLabel` (no TF encoder),
and the files are array_record, read with `builder.as_data_source()`.

Configs:
  full  All 737,280 images, record i = image i of the original file. Default.
  tiny  Every 257th image (2,869 images). 257 is prime to every factor size, so
        the subset holds every value of every factor; for tests and smoke runs.

Preparing writes one array_record shard (~200 MB for `full`, in about 20 s on
2 CPU cores). TFDS's generic writer encodes each example feature by feature
in Python (~125 µs an example, 95 s for `full`), so `_generate_splits` writes
the same records from pre-serialised pieces instead; `_generate_examples` is
kept as the reference the tests compare those records with.

Usage (the input pipeline prepares on first use):

  builder = DspritesProcedural(config='tiny', data_dir=data_dir)
  builder.download_and_prepare()
  source = builder.as_data_source()['train']
  source[0]['image']  # uint8 (64, 64, 1)
"""

import dataclasses
import zlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.proto import tf_feature_pb2

from bvae_jax.datasets import dsprites

# Images rendered at a time while generating: big enough that rendering costs
# nothing next to serialising, small enough to stay a few MB.
_RENDER_CHUNK = 8192
# Catalog feature-name suffix of each factor, in dsprites.FACTOR_NAMES order.
_CATALOG_SUFFIXES = ('shape', 'scale', 'orientation', 'x_position',
                     'y_position')
# zlib level of the stored images. Level 1 is twice as fast as the default 6
# both ways (7 vs 16 µs to compress, 7 vs 13 µs to decompress) for 95 instead
# of 64 bytes an image; reading speed matters more than 20 MB of disk.
_ZLIB_LEVEL = 1


@dataclasses.dataclass(eq=False)
class DspritesProceduralConfig(tfds.core.BuilderConfig):
  """Which images a config holds.

  Attributes:
    stride: keep image indices 0, stride, 2·stride, ... of the full set.
  """
  stride: int = 1

  def image_indices(self):
    """Indices, into the full set, of the images this config holds."""
    return np.arange(0, dsprites.NUM_IMAGES, self.stride)


class DspritesProcedural(tfds.core.GeneratorBasedBuilder):
  """dSprites rendered procedurally (see bvae_jax/datasets/dsprites.py)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [
      DspritesProceduralConfig(
          name='full', stride=1,
          description='All 737,280 images in the order of the original file.'),
      DspritesProceduralConfig(
          name='tiny', stride=257,
          description='Every 257th image (2,869): every factor value occurs.'),
  ]
  DEFAULT_CONFIG_NAME = 'full'

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    """This file.

    TFDS's own lookup imports `importlib_resources`, a backport that TFDS
    4.9.10 declares only for Python < 3.9 yet imports on every version.
    """
    return epath.Path(__file__)

  def __init__(self, *, file_format=None, **kwargs):
    # FileReaderBuilder falls back to tfrecord, which needs TensorFlow to read;
    # array_record gives random access (as_data_source) without it.
    super().__init__(file_format=file_format or 'array_record', **kwargs)

  def _info(self):
    features = {
        # zlib: a binary sprite image shrinks ~40x, to ~100 bytes.
        'image': tfds.features.Tensor(
            shape=(64, 64, 1), dtype=np.uint8, encoding='zlib'),
    }
    for suffix, size in zip(_CATALOG_SUFFIXES, dsprites.FACTOR_SIZES):
      features[f'label_{suffix}'] = tfds.features.ClassLabel(num_classes=size)
    for suffix in _CATALOG_SUFFIXES:
      features[f'value_{suffix}'] = tfds.features.Tensor(
          shape=(), dtype=np.float32)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage='https://github.com/deepmind/dsprites-dataset',
        # Record i is the i-th image of the config, in the original order.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    """Yields (image index, record); TFDS's generic path, kept as reference."""
    for indices, factors, images in _rendered_chunks(self.builder_config):
      for index, image, row in zip(indices.tolist(), images, factors.tolist()):
        yield index, example_dict(image, row)

  def _generate_splits(self, dl_manager, download_config):
    """Writes the 'train' split as one shard; returns its SplitInfo.

    Overrides GeneratorBasedBuilder._generate_splits, which would send every
    record of `_generate_examples` through the generic encoder.
    """
    del dl_manager, download_config  # Nothing to download; no beam options.
    template = self._get_filename_template(split_name='train')
    path = template.sharded_filepath(shard_index=0, num_shards=1)
    serializer = _FastSerializer()
    num_records = 0
    num_bytes = 0

    def serialized_records():
      nonlocal num_records, num_bytes
      for _, factors, images in _rendered_chunks(self.builder_config):
        for record in serializer.serialize_chunk(factors, images):
          num_records += 1
          num_bytes += len(record)
          yield num_records, record

    adapter = file_adapters.ADAPTER_FOR_FORMAT[self.info.file_format]
    adapter.write_examples(path, serialized_records())
    return [tfds.core.SplitInfo(
        name='train', shard_lengths=[num_records], num_bytes=num_bytes,
        filename_template=template)]


def example_dict(image, factor_row):
  """Returns the catalog-style feature dict for one image.

  Args:
    image: uint8 (64, 64, 1).
    factor_row: the image's 5 factor indices.
  """
  record = {'image': image}
  for column, suffix in enumerate(_CATALOG_SUFFIXES):
    factor = factor_row[column]
    record[f'label_{suffix}'] = factor
    record[f'value_{suffix}'] = np.float32(dsprites.FACTOR_VALUES[column][factor])
  return record


def builder(config='full', data_dir=None):
  """Returns the builder for `config`, data in `data_dir` (None: TFDS default)."""
  return DspritesProcedural(config=config, data_dir=data_dir)


def _rendered_chunks(config):
  """Yields (indices, factors, images) for the config's images, in order."""
  indices = config.image_indices()
  for start in range(0, len(indices), _RENDER_CHUNK):
    chunk = indices[start:start + _RENDER_CHUNK]
    factors = dsprites.index_to_factors(chunk)
    yield chunk, factors, dsprites.render(factors)


class _FastSerializer:
  """Serialises records as tf.train.Example bytes from cached pieces.

  A serialised message is the concatenation of its serialised fields, and
  repeated map entries concatenate too, so the `Features` payload of a record
  is its per-feature payloads joined. The label/value payloads depend only on
  one factor value each, so they are serialised once; per image only the zlib
  image and one small message are made. The result parses to the same
  `Example` as TFDS's serializer gives (tests check it).
  """

  def __init__(self):
    # _label_pieces[column][factor] = serialised Features payload of the
    # label_* and value_* entries for that factor value.
    self._label_pieces = []
    for column, suffix in enumerate(_CATALOG_SUFFIXES):
      pieces = []
      for factor, value in enumerate(dsprites.FACTOR_VALUES[column]):
        features = tf_feature_pb2.Features(feature={
            f'label_{suffix}': tf_feature_pb2.Feature(
                int64_list=tf_feature_pb2.Int64List(value=[factor])),
            f'value_{suffix}': tf_feature_pb2.Feature(
                float_list=tf_feature_pb2.FloatList(value=[np.float32(value)])),
        })
        pieces.append(features.SerializeToString())
      self._label_pieces.append(pieces)

  def serialize_chunk(self, factors, images):
    """Yields the serialised Example of each (factor row, image)."""
    for row, image in zip(factors.tolist(), images):
      compressed = zlib.compress(image.tobytes(), _ZLIB_LEVEL)
      image_piece = tf_feature_pb2.Features(feature={
          'image': tf_feature_pb2.Feature(
              bytes_list=tf_feature_pb2.BytesList(value=[compressed]))
      }).SerializeToString()
      payload = b''.join(
          [image_piece] + [pieces[factor] for pieces, factor
                           in zip(self._label_pieces, row)])
      yield _EXAMPLE_FEATURES_TAG + _varint(len(payload)) + payload


# Wire-format tag of Example.features: field 1, length-delimited.
_EXAMPLE_FEATURES_TAG = bytes([(1 << 3) | 2])


def _varint(value):
  """Protocol-buffer base-128 varint encoding of a non-negative int."""
  out = bytearray()
  while True:
    low_bits = value & 0x7F
    value >>= 7
    if value:
      out.append(low_bits | 0x80)
    else:
      out.append(low_bits)
      return bytes(out)
