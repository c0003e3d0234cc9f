"""Tests of the ground-truth interface (disentanglement_lib's GroundTruthData).

The reference is disentanglement_lib/data/ground_truth/ground_truth_data.py and
dsprites.py (Locatello et al. 2019): factors drawn with
`random_state.randint(size, size=num)` factor by factor, observations float
NHWC in [0, 1], `sample` = factors then their observations.
"""

import numpy as np
import pytest

from bvae_jax.datasets import color_dsprites
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import gaussian_blobs
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import records
from bvae_jax.datasets import registry


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def open_dataset(data_dir, name, source='procedural'):
  return registry.open_dataset(name, source, data_dir)


@pytest.fixture(scope='module')
def dsprites_truth(data_dir):
  return open_dataset(data_dir, 'dsprites/tiny').ground_truth()


def test_dsprites_protocol_attributes(dsprites_truth):
  assert dsprites_truth.num_factors == 5
  assert dsprites_truth.factors_num_values == [3, 6, 40, 32, 32]
  assert dsprites_truth.observation_shape == (64, 64, 1)
  assert dsprites_truth.factor_names == dsprites.FACTOR_NAMES


def test_sample_factors_draws_like_disentanglement_lib(dsprites_truth):
  # disentanglement_lib's SplitDiscreteStateSpace.sample_latent_factors:
  # one randint(size, size=num) per factor, in factor order.
  ours = dsprites_truth.sample_factors(100, np.random.RandomState(3))
  reference_state = np.random.RandomState(3)
  reference = np.stack([reference_state.randint(size, size=100)
                        for size in [3, 6, 40, 32, 32]], axis=1)
  np.testing.assert_array_equal(ours, reference)
  assert ours.dtype == np.int64


def test_observations_are_exactly_the_images_of_the_factors(dsprites_truth):
  factors = dsprites_truth.sample_factors(50, np.random.RandomState(0))
  observations = dsprites_truth.sample_observations_from_factors(
      factors, np.random.RandomState(1))
  assert observations.dtype == np.float32
  assert observations.shape == (50, 64, 64, 1)
  np.testing.assert_array_equal(observations, dsprites.render(factors))


def test_sample_and_sample_observations_agree(dsprites_truth):
  factors, observations = dsprites_truth.sample(20, np.random.RandomState(5))
  np.testing.assert_array_equal(
      factors, dsprites_truth.sample_factors(20, np.random.RandomState(5)))
  np.testing.assert_array_equal(observations, dsprites.render(factors))
  np.testing.assert_array_equal(
      dsprites_truth.sample_observations(20, np.random.RandomState(5)),
      observations)


@pytest.mark.parametrize('factors, message', [
    (np.array([[3, 0, 0, 0, 0]]), r"factor 'shape' \(column 0\) has value 3, "
     r'valid range is \[0, 2\]'),
    (np.array([[0, 0, 0, 0, -1]]), "factor 'pos_y'"),
    (np.zeros((2, 4), int), r'shape \(num, 5\)'),
    (np.zeros((2, 5)), 'integers'),
])
def test_out_of_range_factors_are_named(dsprites_truth, factors, message):
  with pytest.raises(ValueError, match=message):
    dsprites_truth.sample_observations_from_factors(factors, None)


def test_record_ground_truth_reads_the_record_of_the_factors(data_dir):
  # The official-file layout (record i = image i) on the procedural records of
  # the full set would need the full set; use the tiny set's labels instead.
  dataset = open_dataset(data_dir, 'dsprites/tiny')
  images = dataset.images
  labels = images.read_labels(
      ['label_shape', 'label_scale', 'label_orientation', 'label_x_position',
       'label_y_position'])
  np.testing.assert_array_equal(
      labels, dsprites.index_to_factors(np.arange(0, dsprites.NUM_IMAGES, 257)))
  truth = ground_truth.RecordGroundTruth.from_labels(
      dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, (64, 64, 1), images,
      labels, source_name='tiny')
  assert truth.num_missing_combinations == dsprites.NUM_IMAGES - 2_869
  wanted = labels[[5, 2_000, 17]]
  np.testing.assert_array_equal(
      truth.sample_observations_from_factors(wanted, None),
      dsprites.render(wanted))
  with pytest.raises(ValueError, match='tiny: no record has the factors'):
    truth.sample_observations_from_factors(np.array([[0, 0, 0, 0, 1]]), None)


def test_from_labels_keeps_the_first_of_duplicate_records():
  class Reader:
    def read_images(self, indices):
      return np.asarray(indices, np.float32)[:, None, None, None]
  truth = ground_truth.RecordGroundTruth.from_labels(
      ('a',), (2,), (1, 1, 1), Reader(), np.array([[1], [0], [1]]))
  np.testing.assert_array_equal(
      truth.sample_observations_from_factors(np.array([[1], [0]]), None)
      .ravel(), [0, 1])


def test_color_dsprites_ground_truth(data_dir):
  truth = open_dataset(data_dir, 'color_dsprites/tiny').ground_truth()
  assert truth.num_factors == 8
  assert truth.factors_num_values == [3, 6, 40, 32, 32, 6, 6, 6]
  assert truth.factor_names[-3:] == ('red', 'green', 'blue')
  assert truth.observation_shape == (64, 64, 3)
  factors = truth.sample_factors(30, np.random.RandomState(0))
  images = truth.sample_observations_from_factors(factors, None)
  assert images.shape == (30, 64, 64, 3) and images.dtype == np.float32
  sprite = dsprites.render(factors[:, :5])[..., 0].astype(bool)
  for image, mask, row in zip(images, sprite, factors):
    colour = 0.5 + 0.1 * row[5:]
    np.testing.assert_allclose(image[mask], np.broadcast_to(colour, (mask.sum(), 3)),
                               rtol=1e-6)
    assert not image[~mask].any()
  with pytest.raises(ValueError, match="factor 'blue' \\(column 7\\)"):
    truth.sample_observations_from_factors(np.array([[0] * 7 + [6]]), None)


def test_color_dsprites_records_have_fixed_colours(data_dir):
  dataset = open_dataset(data_dir, 'color_dsprites/tiny')
  images = dataset.images.read_images([0, 1, 2_868])
  colours = color_dsprites.record_colors(2_869)[[0, 1, 2_868]]
  grey = dsprites.render(dsprites.index_to_factors(np.array([0, 257, 2_868 * 257])))
  for image, mask, colour in zip(images, grey[..., 0].astype(bool), colours):
    np.testing.assert_allclose(image[mask][0], color_dsprites.COLOR_LEVELS[colour])
  # Same data set everywhere: the colours are a fixed function of the record.
  np.testing.assert_array_equal(color_dsprites.record_colors(2_869),
                                color_dsprites.record_colors(2_869))
  labels = dataset.images.read_labels(['label_shape', 'red', 'blue'])
  np.testing.assert_array_equal(labels[:, 1], color_dsprites.record_colors(2_869)[:, 0])


def test_colour_levels_are_documented_values():
  np.testing.assert_allclose(color_dsprites.COLOR_LEVELS,
                             [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], rtol=1e-6)
  # Every level is used by the records.
  assert set(np.unique(color_dsprites.record_colors(10_000))) == set(range(6))


# --------------------------------------------------------------- blobs


def test_gaussian_blob_is_a_gaussian_at_its_grid_position():
  image = gaussian_blobs.render(np.array([[3, 20]]))[0, ..., 0] / 255.0
  row, col = np.unravel_index(image.argmax(), image.shape)
  assert (row, col) == (16 + 20, 16 + 3)  # pos_y moves rows, pos_x columns.
  assert image.max() == 1.0
  # One σ (4 px) from the centre: exp(-1/2), to 8-bit quantisation.
  assert image[row, col + 4] == pytest.approx(np.exp(-0.5), abs=0.5 / 255)
  assert image[row + 4, col + 4] == pytest.approx(np.exp(-1.0), abs=0.5 / 255)
  # Nothing near the border, so no blob is cut off.
  edge_images = gaussian_blobs.render(np.array([[0, 0], [31, 31]]))
  assert edge_images[:, :2].max() <= 1 and edge_images[:, -2:].max() <= 1


def test_gaussian_blobs_records_match_the_renderer(data_dir):
  dataset = open_dataset(data_dir, 'gaussian_blobs', source='auto')
  assert dataset.num_records == 1_024 and dataset.source == 'procedural'
  indices = np.array([0, 1, 33, 1_023])
  np.testing.assert_array_equal(
      dataset.images.read_images(indices),
      gaussian_blobs.render(gaussian_blobs.index_to_factors(indices))
      * np.float32(1 / 255))
  truth = dataset.ground_truth()
  assert truth.factors_num_values == [32, 32]
  factors = truth.sample_factors(10, np.random.RandomState(0))
  np.testing.assert_array_equal(
      truth.sample_observations_from_factors(factors, None),
      dataset.images.read_images(gaussian_blobs.factors_to_index(factors)))


def test_colored_images_reader_validates_colour_indices():
  with pytest.raises(ValueError, match="factor 'green'"):
    color_dsprites.colorize(np.ones((1, 2, 2, 1)), np.array([[0, 9, 0]]))


def test_readers_share_one_interface(data_dir):
  grey = open_dataset(data_dir, 'dsprites/tiny').images
  assert isinstance(grey, records.ArrayRecordImages)
  coloured = color_dsprites.ColoredImages(grey)
  assert coloured.num_records == grey.num_records == 2_869
  assert coloured.read_images([4]).shape == (1, 64, 64, 3)
