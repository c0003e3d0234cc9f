r"""Gaussian blobs: the 2-factor data set of Burgess et al. (2018), Fig. 2.

Each image is one isotropic Gaussian blob on a black 64x64 canvas; its
position is the only thing that varies:

  pos_x  32 values  blob centre on column 16 + pos_x (pixels 16 -> 47)
  pos_y  32 values  blob centre on row 16 + pos_y (pixels 16 -> 47, downward)

Pixel (r, c) holds exp(-((r - r0)² + (c - c0)²) / (2 σ²)) with σ = 4 pixels
(BLOB_STDDEV), so the peak pixel is 1 and the blob fades to < 1% within
~12 px of its centre. It never touches the border (the centre stays ≥ 16 px
from it). The position grid is dSprites' (Matthey et al. 2017), so the two
data sets share their x/y factors. Values are stored and returned quantised
to 8 bits (k/255), so the TFDS records and `render` agree exactly.

The paper describes the set only as Gaussian blobs with two generative factors
(x and y); width and grid are our choice, documented here and in
docs/datasets.md.

`SPEC` is the data set `gaussian_blobs` of the registry: the records of the
builder `GaussianBlobs`, prepared locally in well under a second.

Usage:

  images = render(np.array([[0, 31]]))  # uint8 (1, 64, 64, 1); blob bottom-left.
  builder = GaussianBlobs(data_dir=data_dir); builder.download_and_prepare()
"""

import numpy as np
import tensorflow_datasets as tfds

from bvae_jax.datasets import array_record_builder
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import records

FACTOR_NAMES = ('pos_x', 'pos_y')
FACTOR_SIZES = (32, 32)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 1,024
IMAGE_SIZE = 64
BLOB_STDDEV = 4.0  # Pixels.
FIRST_CENTRE_PIXEL = 16  # Row/column of the centre at position index 0.
# Stored value of a white pixel.
MAX_PIXEL_VALUE = 255


def index_to_factors(indices):
  """Maps image indices to (pos_x, pos_y) factor indices; pos_y fastest."""
  indices = np.asarray(indices, np.int64)
  return np.stack([indices // FACTOR_SIZES[1], indices % FACTOR_SIZES[1]], -1)


def factors_to_index(factors):
  """Maps (..., 2) factor indices to image indices; checks ranges."""
  factors = validated_factors(factors)
  return factors[..., 0] * FACTOR_SIZES[1] + factors[..., 1]


def validated_factors(factors):
  """Returns `factors` as int64 (..., 2) after checking shape and ranges.

  Raises:
    ValueError: naming the factor, the bad value and the valid range.
  """
  return ground_truth.validated_factors(factors, FACTOR_NAMES, FACTOR_SIZES)


def render(factors):
  """Renders blobs.

  Args:
    factors: int array (N, 2), columns (pos_x, pos_y).

  Returns:
    uint8 (N, 64, 64, 1); divide by MAX_PIXEL_VALUE for [0, 1].
  """
  factors = validated_factors(factors)
  if factors.ndim != 2:
    raise ValueError(f'factors must have shape (N, 2), got {factors.shape}')
  pixels = np.arange(IMAGE_SIZE, dtype=np.float64)
  # Separable: exp(-(dr² + dc²)/2σ²) = exp(-dr²/2σ²)·exp(-dc²/2σ²).
  rows = _profile(pixels[None, :] - (FIRST_CENTRE_PIXEL + factors[:, 1:2]))
  cols = _profile(pixels[None, :] - (FIRST_CENTRE_PIXEL + factors[:, 0:1]))
  images = rows[:, :, None] * cols[:, None, :]
  return np.round(images * MAX_PIXEL_VALUE).astype(np.uint8)[..., None]


def _profile(offsets):
  return np.exp(-offsets**2 / (2 * BLOB_STDDEV**2))


class GaussianBlobs(array_record_builder.ArrayRecordBuilder):
  """Gaussian blobs on a 32x32 position grid; record i is image i."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}

  def _info(self):
    features = {'image': tfds.features.Tensor(
        shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8, encoding='zlib')}
    for name, size in zip(FACTOR_NAMES, FACTOR_SIZES):
      features[f'label_{name}'] = tfds.features.ClassLabel(num_classes=size)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        disable_shuffling=True,  # Record i is image i (index_to_factors).
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    factors = index_to_factors(np.arange(NUM_IMAGES))
    for index, (image, row) in enumerate(zip(render(factors), factors)):
      yield index, {'image': image, 'label_pos_x': row[0],
                    'label_pos_y': row[1]}


def _open(subset, data_dir):
  del subset  # One variant.
  builder = dataset_spec.prepare(GaussianBlobs(data_dir=data_dir))
  return dataset_spec.Opened(
      builder=builder,
      images=records.ArrayRecordImages(builder,
                                       max_pixel_value=MAX_PIXEL_VALUE),
      make_ground_truth=lambda: ground_truth.RenderedGroundTruth(
          FACTOR_NAMES, FACTOR_SIZES, SPEC.image_shape, render,
          MAX_PIXEL_VALUE))


SPEC = dataset_spec.DatasetSpec(
    name='gaussian_blobs',
    variants=('gaussian_blobs',),
    sources=(dataset_spec.Source(
        'procedural', 'procedural', _open,
        'procedural renderer ({tfds_name} in {data_dir}; {why})'),),
    factor_names=FACTOR_NAMES,
    factor_sizes=FACTOR_SIZES,
    image_shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
    # 2 factors on a 32x32 grid carry log 1024 = 6.9 nats; C to 7 nats lets
    # the model encode them and nothing else.
    config_settings=dict(latent_dim=10, capacity_max=7.0),
)
