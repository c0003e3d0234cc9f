"""Tests of the procedural dSprites renderer and its TFDS builder.

"Real" numbers are facts measured on the original dSprites images; "golden"
numbers are what our renderer gives, pinned so that a change shows up.
"""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer
from tensorflow_datasets.proto import tf_example_pb2

from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds

SQUARE, ELLIPSE, HEART = dsprites.SQUARE, dsprites.ELLIPSE, dsprites.HEART
LARGEST_SCALE = 5


def _images(shape=SQUARE, scale=LARGEST_SCALE, orientation=0, pos_x=0,
            pos_y=0):
  """Renders every combination of the given factor values (ints or lists)."""
  grids = np.meshgrid(*[np.atleast_1d(v) for v in
                        (shape, scale, orientation, pos_x, pos_y)],
                      indexing='ij')
  factors = np.stack([g.ravel() for g in grids], axis=1)
  return dsprites.render(factors)[..., 0].astype(np.float64)


def _centroid(image):
  """(row, column) centre of mass of a 2-D binary image."""
  rows, cols = np.nonzero(image)
  return rows.mean(), cols.mean()


def _second_moments(image):
  """(row variance, column variance, row-column covariance)."""
  rows, cols = np.nonzero(image)
  rows = rows - rows.mean()
  cols = cols - cols.mean()
  return (rows**2).mean(), (cols**2).mean(), (rows * cols).mean()


# ----------------------------------------------------------------- constants


def test_factor_grid_matches_original():
  assert dsprites.FACTOR_NAMES == (
      'shape', 'scale', 'orientation', 'pos_x', 'pos_y')
  assert dsprites.FACTOR_SIZES == (3, 6, 40, 32, 32)
  assert dsprites.NUM_IMAGES == 737_280
  np.testing.assert_array_equal(dsprites.FACTOR_VALUES[0], [1, 2, 3])
  np.testing.assert_allclose(dsprites.FACTOR_VALUES[1],
                             [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
  orientations = dsprites.FACTOR_VALUES[2]
  assert orientations[0] == 0 and orientations[-1] == pytest.approx(2 * np.pi)
  np.testing.assert_allclose(np.diff(orientations), 2 * np.pi / 39)
  for positions in dsprites.FACTOR_VALUES[3:]:
    np.testing.assert_allclose(positions, np.arange(32) / 31)


# ------------------------------------------------------------------ indexing


@pytest.mark.parametrize('index, factors', [
    (0, [0, 0, 0, 0, 0]),
    (1, [0, 0, 0, 0, 1]),  # pos_y is the fastest digit.
    (32, [0, 0, 0, 1, 0]),
    (1024, [0, 0, 1, 0, 0]),
    (40_960, [0, 1, 0, 0, 0]),
    (245_760, [1, 0, 0, 0, 0]),
    (737_279, [2, 5, 39, 31, 31]),
])
def test_index_to_factors_golden(index, factors):
  np.testing.assert_array_equal(dsprites.index_to_factors(index), factors)
  assert dsprites.factors_to_index(factors) == index


def test_index_factor_round_trip_over_all_images():
  indices = np.arange(dsprites.NUM_IMAGES)
  factors = dsprites.index_to_factors(indices)
  assert factors.shape == (dsprites.NUM_IMAGES, 5)
  np.testing.assert_array_equal(dsprites.factors_to_index(factors), indices)
  np.testing.assert_array_equal(factors.max(0),
                                np.array(dsprites.FACTOR_SIZES) - 1)


def test_index_to_factors_keeps_batch_shape():
  assert dsprites.index_to_factors(np.zeros((2, 3), int)).shape == (2, 3, 5)


@pytest.mark.parametrize('bad', [-1, dsprites.NUM_IMAGES])
def test_index_to_factors_rejects_out_of_range(bad):
  with pytest.raises(ValueError, match=f'{bad} out of range'):
    dsprites.index_to_factors([0, bad])


# ----------------------------------------------------------- bad render input


@pytest.mark.parametrize('column, bad', [
    (0, 3), (1, 6), (2, 40), (3, 32), (4, -1),
])
def test_render_rejects_out_of_range_factor(column, bad):
  factors = np.zeros((2, 5), int)
  factors[1, column] = bad
  name = dsprites.FACTOR_NAMES[column]
  top = dsprites.FACTOR_SIZES[column] - 1
  with pytest.raises(ValueError) as error:
    dsprites.render(factors)
  message = str(error.value)
  assert repr(name) in message
  assert f'value {bad}' in message
  assert f'[0, {top}]' in message


@pytest.mark.parametrize('factors', [
    np.zeros((2, 4), int), np.zeros(5, int), np.zeros((1, 2, 5), int),
])
def test_render_rejects_wrong_shape(factors):
  with pytest.raises(ValueError, match='shape'):
    dsprites.render(factors)


def test_render_rejects_float_factors():
  with pytest.raises(ValueError, match='integers'):
    dsprites.render(np.zeros((1, 5)))


# ------------------------------------------------------------ image format


def test_render_format():
  images = dsprites.render(dsprites.index_to_factors(np.arange(0, 737_280,
                                                               9_001)))
  assert images.shape == (82, 64, 64, 1)
  assert images.dtype == np.uint8
  assert set(np.unique(images)) == {0, 1}


def test_render_empty_batch():
  assert dsprites.render(np.zeros((0, 5), int)).shape == (0, 64, 64, 1)


def test_render_rows_are_the_rendered_pixels():
  factors = dsprites.index_to_factors(np.arange(0, dsprites.NUM_IMAGES, 4_099))
  rows = dsprites.render_rows(factors)
  bits = (rows[:, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
  np.testing.assert_array_equal(bits.astype(np.uint8),
                                dsprites.render(factors)[..., 0])


def _rasterise_by_definition(polygon, centre_x, centre_y):
  """Pixel (r, c) is on iff its centre has an odd crossing number.

  Written per pixel from the definition (a ray from the pixel centre to the
  right, counting the outline's edges it crosses, each edge half-open in y),
  independently of the renderer's row-crossing table and bit tricks.
  """
  x = polygon[:, 0] + centre_x
  y = polygon[:, 1] + centre_y
  x_next, y_next = np.roll(x, -1), np.roll(y, -1)
  image = np.zeros((64, 64), np.uint8)
  for row in range(64):
    for column in range(64):
      px, py = column + 0.5, row + 0.5
      straddles = (y > py) != (y_next > py)
      with np.errstate(divide='ignore', invalid='ignore'):
        crossing_x = x + (py - y) * (x_next - x) / (y_next - y)
      image[row, column] = np.sum(straddles & (crossing_x >= px)) % 2
  return image


def test_render_is_pixel_centre_sampling_of_the_outline():
  rng = np.random.default_rng(0)
  factors = dsprites.index_to_factors(rng.integers(0, dsprites.NUM_IMAGES, 12))
  images = dsprites.render(factors)[..., 0]
  for image, (shape, scale, orientation, pos_x, pos_y) in zip(images, factors):
    expected = _rasterise_by_definition(
        dsprites.outline(shape, scale, orientation),
        dsprites.reference_point(pos_x), dsprites.reference_point(pos_y))
    np.testing.assert_array_equal(image, expected)


# ------------------------------------------------------------------ position


def test_position_moves_the_reference_point_over_the_central_half():
  # Real: a square's or ellipse's centroid is at pixel 15.5 at position 0 and
  # 47.5 at position 1 (16 + 32 · value in continuous coordinates).
  np.testing.assert_allclose(dsprites.reference_point(np.array([0, 31])),
                             [16.0, 48.0])
  images = _images(shape=[SQUARE, ELLIPSE], scale=range(6), pos_x=[0, 31],
                   pos_y=[0, 31])
  centroids = np.array([_centroid(image) for image in images]).reshape(
      2, 6, 2, 2, 2)  # shape, scale, pos_x, pos_y, (row, column)
  np.testing.assert_allclose(centroids[:, :, 0, :, 1], 15.5, atol=1e-9)
  np.testing.assert_allclose(centroids[:, :, 1, :, 1], 47.5, atol=1e-9)
  np.testing.assert_allclose(centroids[:, :, :, 0, 0], 15.5, atol=1e-9)
  np.testing.assert_allclose(centroids[:, :, :, 1, 0], 47.5, atol=1e-9)


def test_positions_step_by_32_31_of_a_pixel():
  # Sub-pixel steps: the centroid follows 15.5 + 32·k/31 to within the half
  # pixel that sampling can move an edge.
  images = _images(shape=SQUARE, scale=3, pos_x=range(32))
  columns = np.array([_centroid(image)[1] for image in images])
  np.testing.assert_allclose(columns, 15.5 + 32 * np.arange(32) / 31, atol=0.5)
  assert len(set(np.round(np.diff(columns), 6))) > 1  # Not whole-pixel steps.


def test_pos_x_moves_columns_and_pos_y_moves_rows_down():
  # Position 31 is exactly 32 pixels from position 0.
  base = _images(shape=HEART, orientation=7)[0]
  np.testing.assert_array_equal(_images(shape=HEART, orientation=7, pos_x=31)[0],
                                np.roll(base, 32, axis=1))
  np.testing.assert_array_equal(_images(shape=HEART, orientation=7, pos_y=31)[0],
                                np.roll(base, 32, axis=0))


# ---------------------------------------------------------------------- size


def test_square_sides_at_orientation_0_are_the_real_ones():
  # Real: 10, 12, 14, 16, 18, 20 pixels a side over the six scales.
  images = _images(shape=SQUARE, scale=range(6))
  for image, side in zip(images, (10, 12, 14, 16, 18, 20)):
    assert image.sum() == side * side
    assert image.any(0).sum() == side and image.any(1).sum() == side


@pytest.mark.parametrize('shape, real_area', [
    (SQUARE, 368), (ELLIPSE, 288), (HEART, 225)])
def test_scale_1_area_matches_real_images(shape, real_area):
  # Real: ~368 (rotated squares), ~288 and ~225 px at scale 1.
  areas = _images(shape=shape, orientation=range(1, 39)).sum((1, 2))
  assert abs(areas.mean() - real_area) <= 0.02 * real_area
  assert np.all(np.abs(areas - real_area) <= 0.1 * real_area)


@pytest.mark.parametrize('shape', [SQUARE, ELLIPSE, HEART])
def test_area_scales_with_scale_squared(shape):
  images = _images(shape=shape, scale=range(6), orientation=range(40))
  areas = images.sum((1, 2)).reshape(6, 40).mean(1)
  scales = dsprites.FACTOR_VALUES[1]
  np.testing.assert_allclose(areas / areas[-1], scales**2, rtol=0.05)


# ------------------------------------------------------ shape and orientation


def test_ellipse_at_orientation_0_is_the_real_one():
  # Real, scale 1: 288 px in 14 rows × 26 columns; scale 0.5: 76 px, 8 × 12.
  large, small = _images(shape=ELLIPSE, scale=[5, 0])
  assert (large.sum(), large.any(1).sum(), large.any(0).sum()) == (288, 14, 26)
  assert (small.sum(), small.any(1).sum(), small.any(0).sum()) == (76, 8, 12)
  assert _second_moments(large)[2] == 0


def test_heart_is_upright_at_orientation_0():
  image = _images(shape=HEART)[0]
  rows = np.nonzero(image.any(1))[0]
  # The point: at most two pixels in the bottom row.
  assert image[rows[-1]].sum() <= 2
  # Two lobes: the top row of pixels has two separate runs.
  top = image[rows[0]]
  runs = np.sum(np.diff(np.concatenate([[0], top, [0]])) == 1)
  assert runs == 2
  # The mass sits high: centroid above the middle of the bounding box.
  centroid_row, _ = _centroid(image)
  assert centroid_row < (rows[0] + rows[-1]) / 2 - 1


def test_heart_turns_about_a_point_that_is_not_its_centroid():
  # Real: the centroid sits ~1.9 px above the position at scale 1 and
  # circles it as the heart rotates.
  images = _images(shape=HEART, orientation=[0, 10, 20, 30], pos_x=15,
                   pos_y=15)
  reference = dsprites.reference_point(15) - 0.5  # In pixel-index coordinates.
  offsets = np.array([_centroid(image) for image in images]) - reference
  np.testing.assert_allclose(np.hypot(*offsets.T), 1.9, atol=0.3)
  assert offsets[0, 0] < -1.5 and offsets[2, 0] > 1.5  # Above, then below.
  assert offsets[1, 1] < -1.5 and offsets[3, 1] > 1.5  # Left, then right.


def test_rotation_is_counter_clockwise_on_screen():
  # Orientation 5 is 46°: counter-clockwise on screen tips the ellipse's long
  # axis up to the right, i.e. rows decrease as columns increase.
  _, _, covariance = _second_moments(_images(shape=ELLIPSE, orientation=5)[0])
  assert covariance < 0
  # Orientation 10 is 92°: the heart's point, at the bottom when upright,
  # turns to the right and the lobes to the left.
  heart = _images(shape=HEART, orientation=10)[0]
  cols = np.nonzero(heart.any(0))[0]
  assert heart[:, cols[-1]].sum() <= 2
  _, centroid_col = _centroid(heart)
  assert centroid_col < (cols[0] + cols[-1]) / 2 - 1


def test_first_and_last_orientation_coincide():
  images = _images(shape=[0, 1, 2], scale=range(6), orientation=[0, 39])
  np.testing.assert_array_equal(images[0::2], images[1::2])


# ------------------------------------------------------------------- borders


def test_no_sprite_reaches_the_border():
  # Every outline, at the extreme positions, keeps clear of the outer pixels'
  # centres, so no sprite is cut.
  low, high = dsprites.reference_point(np.array([0, 31]))
  for shape in range(3):
    for scale in range(6):
      for orientation in range(40):
        vertices = dsprites.outline(shape, scale, orientation)
        assert vertices.min() + low > 0.5 and vertices.max() + high < 63.5
  images = _images(shape=range(3), scale=5, orientation=range(0, 40, 5),
                   pos_x=[0, 31], pos_y=[0, 31])
  assert not images[:, [0, -1], :].any()
  assert not images[:, :, [0, -1]].any()


# --------------------------------------------------------------- TFDS builder

# Feature names and dtypes of the TFDS catalog builder `dsprites` (source:
# tensorflow_datasets/datasets/dsprites/dsprites_dataset_builder.py, 2.0.0).
CATALOG_FEATURES = {
    'image': np.uint8,
    'label_shape': np.int64,
    'label_scale': np.int64,
    'label_orientation': np.int64,
    'label_x_position': np.int64,
    'label_y_position': np.int64,
    'value_shape': np.float32,
    'value_scale': np.float32,
    'value_orientation': np.float32,
    'value_x_position': np.float32,
    'value_y_position': np.float32,
}
TINY_SIZE = 2_869  # ceil(737,280 / 257).


@pytest.fixture(scope='module')
def tiny_builder(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  builder = dsprites_tfds.builder('tiny', data_dir)
  builder.download_and_prepare()
  return dsprites_tfds.builder('tiny', data_dir)  # Fresh: reads from disk.


def test_builder_features_match_catalog_dsprites(tiny_builder):
  features = tiny_builder.info.features
  assert {name: features[name].np_dtype for name in features} == (
      CATALOG_FEATURES)
  assert features['image'].shape == (64, 64, 1)
  assert [features[f'label_{name}'].num_classes for name in (
      'shape', 'scale', 'orientation', 'x_position', 'y_position')] == [
          3, 6, 40, 32, 32]


def test_builder_defaults_to_array_record_full(tmp_path):
  builder = dsprites_tfds.DspritesProcedural(data_dir=tmp_path)
  assert builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
  assert builder.builder_config.name == 'full'
  assert len(builder.builder_config.image_indices()) == dsprites.NUM_IMAGES


def test_tiny_config_covers_every_factor_value():
  indices = dsprites_tfds.DspritesProcedural.builder_configs[
      'tiny'].image_indices()
  assert len(indices) == TINY_SIZE
  factors = dsprites.index_to_factors(indices)
  assert [len(np.unique(column)) for column in factors.T] == list(
      dsprites.FACTOR_SIZES)


def test_prepared_records_are_the_rendered_images(tiny_builder):
  source = tiny_builder.as_data_source()['train']
  assert len(source) == TINY_SIZE
  for record_index in [0, 1, 1000, TINY_SIZE - 1]:
    record = source[record_index]
    factors = dsprites.index_to_factors(257 * record_index)
    np.testing.assert_array_equal(record['image'],
                                  dsprites.render(factors[None])[0])
    assert record['image'].dtype == np.uint8
    for column, suffix in enumerate(('shape', 'scale', 'orientation',
                                     'x_position', 'y_position')):
      assert record[f'label_{suffix}'] == factors[column]
      assert record[f'value_{suffix}'] == pytest.approx(
          dsprites.FACTOR_VALUES[column][factors[column]], rel=1e-6)


def test_last_tiny_record_golden(tiny_builder):
  record = tiny_builder.as_data_source('train')[TINY_SIZE - 1]
  # Image 2868 * 257 = 737,076 = 2·245,760 + 5·40,960 + 39·1,024 + 25·32 + 20.
  assert [record['label_shape'], record['label_scale'],
          record['label_orientation'], record['label_x_position'],
          record['label_y_position']] == [2, 5, 39, 25, 20]
  assert record['value_shape'] == 3.0
  assert record['value_orientation'] == pytest.approx(2 * np.pi)
  # The upright heart at scale 1 (the real moving hearts cover 219–232 px).
  assert record['image'].sum() == 223


def test_piece_serializer_matches_tfds_serializer(tiny_builder):
  """Our joined records parse like TFDS's own encoder's output."""
  features = tiny_builder.info.features
  reference = example_serializer.ExampleSerializer(
      features.get_serialized_info())
  indices = np.array([0, 12_345, 500_000, dsprites.NUM_IMAGES - 1])
  factors = dsprites.index_to_factors(indices)
  images = dsprites.render(factors)
  ours = list(dsprites_tfds._PieceSerializer(features).serialize_chunk(
      factors, images))
  for record, image, row in zip(ours, images, factors.tolist()):
    example = dsprites_tfds.example_dict(image, row)
    expected = reference.serialize_example(features.encode_example(example))
    decoded_ours = features.deserialize_example_np(record)
    decoded_expected = features.deserialize_example_np(expected)
    assert decoded_ours.keys() == decoded_expected.keys()
    for name in decoded_expected:
      np.testing.assert_array_equal(decoded_ours[name], decoded_expected[name])
    # Same protos except the zlib level of the image bytes.
    ours_proto = tf_example_pb2.Example.FromString(record)
    expected_proto = tf_example_pb2.Example.FromString(expected)
    del ours_proto.features.feature['image']
    del expected_proto.features.feature['image']
    assert ours_proto == expected_proto


def test_preparing_and_reading_never_imports_tensorflow(tiny_builder):
  tiny_builder.as_data_source('train')[0]
  assert 'tensorflow' not in sys.modules
