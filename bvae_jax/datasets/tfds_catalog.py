r"""Data sets of the TFDS catalog: `shapes3d` and `celeb_a`, and catalog access.

  shapes3d  Burgess & Kim (2018): 480,000 64x64 RGB images, 6 factors read
            from the catalog's labels.
  celeb_a   202,599 faces, 218x178, cropped and resized to 64x64 here; no
            ground-truth factors (its 40 attributes are annotations).

TFDS prepares both (network access and TensorFlow, which encodes their images:
requirements-catalog.txt) as array_record, which bvae_jax reads without
TensorFlow. `prepared_builder` opens a catalog builder only if it is already
prepared that way, for a data set (dsprites) that falls back when it is not.
"""

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters

from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import records

SHAPES3D_FACTOR_NAMES = ('floor_hue', 'wall_hue', 'object_hue', 'scale',
                         'shape', 'orientation')
# The catalog's label feature of each factor.
SHAPES3D_LABELS = tuple(f'label_{name}' for name in SHAPES3D_FACTOR_NAMES)
# CelebA (218x178): the central 148x148 square (rows 35-182, columns 15-162),
# which holds the face, is resized to 64x64 with an area filter.
CELEBA_CROP = (35, 15, 148)
_LOG_TEXT = 'TFDS catalog {tfds_name} in {data_dir}'


def prepared_builder(name, data_dir):
  """The catalog builder `name` if prepared in data_dir as array_record.

  Raises:
    dataset_spec.SourceUnavailableError: saying why it cannot be read.
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as error:  # pylint: disable=broad-except
    raise dataset_spec.SourceUnavailableError(
        f'TFDS catalog {name!r} unavailable ({error})') from error
  if not builder.is_prepared():
    raise dataset_spec.SourceUnavailableError(
        f'TFDS catalog {name!r} not prepared in {builder.data_dir}')
  if builder.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
    raise dataset_spec.SourceUnavailableError(
        f'TFDS catalog {name!r} in {builder.data_dir} is stored as '
        f'{builder.info.file_format.value}; random access needs array_record')
  return builder


def prepare_builder(name, data_dir):
  """The catalog builder `name`, prepared as array_record on first use.

  Raises:
    dataset_spec.DatasetUnavailableError: saying how to obtain the data.
  """
  builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
  try:
    dataset_spec.prepare(builder, 'TFDS catalog data set')
  except Exception as error:  # pylint: disable=broad-except
    raise dataset_spec.DatasetUnavailableError(
        f'{name}: TFDS could not prepare it in {builder.data_dir} '
        f'({type(error).__name__}: {error}). Preparing needs network access '
        f'and TensorFlow (TFDS encodes its images with it: pip install -r '
        f'requirements-catalog.txt); or copy a data dir where {name} is '
        'prepared as array_record and set config.data_dir.') from error
  if builder.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
    raise dataset_spec.DatasetUnavailableError(
        f'{name} in {builder.data_dir} is stored as '
        f'{builder.info.file_format.value}; bvae_jax reads array_record. '
        f'Prepare it again with tfds.builder({name!r}, '
        "file_format='array_record').download_and_prepare().")
  return builder


def celeba_crop_and_resize(image):
  """uint8 (218, 178, 3) CelebA image -> uint8 (64, 64, 3); see CELEBA_CROP."""
  top, left, size = CELEBA_CROP
  square = np.ascontiguousarray(image[top:top + size, left:left + size])
  return np.asarray(Image.fromarray(square).resize((64, 64), Image.BOX))


def _open_shapes3d(subset, data_dir):
  del subset  # One variant.
  builder = prepare_builder('shapes3d', data_dir)
  images = records.DataSourceImages(builder, max_pixel_value=255)
  # Sizes as the prepared builder states them (SHAPES3D.factor_sizes, which
  # a test checks against them).
  sizes = [builder.info.features[label].num_classes
           for label in SHAPES3D_LABELS]
  return dataset_spec.Opened(
      builder=builder, images=images,
      make_ground_truth=lambda: ground_truth.RecordGroundTruth.from_labels(
          SHAPES3D_FACTOR_NAMES, sizes, SHAPES3D.image_shape, images,
          images.read_labels(SHAPES3D_LABELS),
          source_name=builder.info.full_name))


def _open_celeb_a(subset, data_dir):
  del subset  # One variant.
  builder = prepare_builder('celeb_a', data_dir)
  return dataset_spec.Opened(
      builder=builder,
      images=records.DataSourceImages(builder, max_pixel_value=255,
                                      preprocess=celeba_crop_and_resize),
      make_ground_truth=None)


SHAPES3D = dataset_spec.DatasetSpec(
    name='shapes3d',
    variants=('shapes3d',),
    sources=(dataset_spec.Source('tfds_catalog', 'real', _open_shapes3d,
                                 _LOG_TEXT),),
    factor_names=SHAPES3D_FACTOR_NAMES,
    factor_sizes=(10, 10, 10, 8, 4, 15),
    image_shape=(64, 64, 3),
    # 6 factors, log 480,000 = 13 nats; dSprites' 25 nats and latents.
    config_settings=dict(latent_dim=10, capacity_max=25.0),
)

CELEB_A = dataset_spec.DatasetSpec(
    name='celeb_a',
    variants=('celeb_a',),
    sources=(dataset_spec.Source('tfds_catalog', 'real', _open_celeb_a,
                                 _LOG_TEXT),),
    factor_names=None,
    factor_sizes=None,
    image_shape=(64, 64, 3),
    # Burgess et al. (2018) Fig. 5: 32 latents, C to 50 nats.
    config_settings=dict(latent_dim=32, capacity_max=50.0),
)
