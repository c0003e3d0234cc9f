"""Tests of the 3D Chairs TFDS builder, on tiny archives built here.

The archives have the real layout (rendered_chairs/<chair>/renders/
image_NNN_pEEE_tAAA_r096.png) but 96x96 renders: the builder crops the middle
2/3, 16:80, which is already 64x64, so a record's image must equal that crop
exactly. Each render has a black margin the crop must drop and a centre
square whose colour encodes its chair and view.
"""

import io
import re
import tarfile

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from bvae_jax import config_defaults
from bvae_jax.datasets import chairs_tfds
from bvae_jax import experiment_config
from tiny_configs import open_configured

# In archive order, which is not sorted order.
CHAIRS = ('c9f0', '1a2b', '7d3e')
RENDER_SIZE = 96
CROP = slice(16, 80)  # The middle 2/3 of RENDER_SIZE.
NUM_AZIMUTHS = len(chairs_tfds.AZIMUTHS)


def _colour(chair_index, azimuth_index, elevation_index):
  """Centre-square colour of a view: one channel per label."""
  return (30 + 100 * chair_index, 4 + 8 * azimuth_index,
          60 + 120 * elevation_index)


def _render(colour):
  """A render: black margin, white inside the crop, a coloured centre square."""
  pixels = np.zeros((RENDER_SIZE, RENDER_SIZE, 3), np.uint8)
  pixels[CROP, CROP] = 255
  pixels[40:56, 40:56] = colour
  return pixels


def _png(pixels):
  """PNG bytes of a uint8 (H, W, C) array."""
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='PNG')
  return buffer.getvalue()


def _render_name(chair, azimuth_index, elevation_index):
  """Member name of a view in the real archive's layout."""
  elevation = chairs_tfds.ELEVATIONS[elevation_index]
  azimuth = chairs_tfds.AZIMUTHS[azimuth_index]
  number = elevation_index * 32 + azimuth_index  # As in the real archive.
  return (f'rendered_chairs/{chair}/renders/'
          f'image_{number:03d}_p{elevation:03d}_t{azimuth:03d}_r096.png')


def tiny_archive_members():
  """(name, bytes) of a complete tiny archive, views in reverse order.

  Also used by tests/test_dataset_specs.py; write it with `write_tar`.
  """
  members = [('rendered_chairs/all_chair_names.mat', b'MATLAB 5.0 MAT-file')]
  for chair in CHAIRS:
    chair_index = sorted(CHAIRS).index(chair)
    for elevation_index in (1, 0):
      for azimuth_index in reversed(range(NUM_AZIMUTHS)):
        colour = _colour(chair_index, azimuth_index, elevation_index)
        members.append((_render_name(chair, azimuth_index, elevation_index),
                        _png(_render(colour))))
  return members


@pytest.fixture(scope='module')
def chair_members():
  return tiny_archive_members()


def write_tar(path, members):
  """Writes a plain tar of (name, bytes) members, creating its folder."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with tarfile.open(path, 'w') as tar:
    folder = tarfile.TarInfo('rendered_chairs')  # Folder entries are skipped.
    folder.type = tarfile.DIRTYPE
    tar.addfile(folder)
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def data_dir(tmp_path):
  return tmp_path / 'tfds'


def _prepare(data_dir):
  builder = chairs_tfds.Chairs3d(data_dir=data_dir)
  builder.download_and_prepare()
  return builder


def _assert_prepare_fails(data_dir, *fragments):
  """Prepares, expecting ChairsArchiveError naming every fragment.

  Then checks that nothing but the archive was left on disk: TFDS removes its
  half-written output, and the builder itself writes nothing.
  """
  archive = chairs_tfds.manual_archive_path(data_dir)
  with pytest.raises(chairs_tfds.ChairsArchiveError) as error:
    _prepare(data_dir)
  for fragment in (str(archive),) + fragments:
    assert fragment in str(error.value)
  root = data_dir.parent
  files = sorted(p for p in root.rglob('*') if p.is_file())
  assert files == ([archive] if archive.exists() else [])
  assert not any('incomplete' in p.name for p in root.rglob('*'))
  assert not (data_dir / 'chairs3d' / '1.0.0').exists()


# ------------------------------------------------------------ preprocessing


def _box_weights(in_size, out_size):
  """PIL's BOX resampling as a matrix: an output pixel is the mean of the
  input pixels whose centres fall in its footprint (start, stop]."""
  scale = in_size / out_size
  centres = np.arange(in_size) + 0.5
  starts = np.arange(out_size)[:, None] * scale
  inside = (centres > starts) & (centres <= starts + scale)
  return inside / inside.sum(axis=1, keepdims=True)


def test_preprocess_render_box_averages_the_middle_of_a_600_render():
  rng = np.random.default_rng(0)
  render = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)
  weights = _box_weights(400, 64)
  expected = np.einsum('ij,jkc,lk->ilc', weights,
                       render[100:500, 100:500].astype(np.float64), weights,
                       optimize=True)

  image = chairs_tfds.preprocess_render(_png(render))

  assert image.shape == (64, 64, 3) and image.dtype == np.uint8
  # PIL rounds to uint8 between its horizontal and vertical passes.
  np.testing.assert_allclose(image, expected, atol=1.0)
  outside_changed = render.copy()
  outside_changed[:100] = 0
  outside_changed[500:] = 0
  outside_changed[:, :100] = 0
  outside_changed[:, 500:] = 0
  np.testing.assert_array_equal(
      chairs_tfds.preprocess_render(_png(outside_changed)), image)


def test_preprocess_render_puts_transparency_on_white():
  rgba = np.zeros((RENDER_SIZE, RENDER_SIZE, 4), np.uint8)  # Clear black.
  rgba[40:56, 40:56] = (200, 10, 20, 255)
  expected = _render((200, 10, 20))[CROP, CROP]

  np.testing.assert_array_equal(
      chairs_tfds.preprocess_render(_png(rgba)), expected)
  palette = Image.fromarray(_render((200, 10, 20))).quantize(colors=4)
  buffer = io.BytesIO()
  palette.save(buffer, format='PNG')
  np.testing.assert_array_equal(
      chairs_tfds.preprocess_render(buffer.getvalue()), expected)


# -------------------------------------------------------------- preparing


def test_prepare_reads_back_every_view_in_record_order(data_dir,
                                                        chair_members):
  write_tar(chairs_tfds.manual_archive_path(data_dir), chair_members)

  builder = _prepare(data_dir)
  source = builder.as_data_source()['train']

  assert chairs_tfds.num_chairs(builder.info) == len(CHAIRS)
  assert len(source) == len(CHAIRS) * chairs_tfds.VIEWS_PER_CHAIR
  features = builder.info.features
  assert sorted(features) == [
      'chair_folder', 'image', 'label_azimuth', 'label_chair',
      'label_elevation', 'value_azimuth', 'value_elevation']
  assert features['label_chair'].np_dtype == np.int64
  assert features['label_azimuth'].num_classes == 31
  assert features['label_elevation'].num_classes == 2
  assert features['value_azimuth'].np_dtype == np.float32
  assert features['value_elevation'].np_dtype == np.float32
  for index in range(len(source)):
    record = source[index]
    chair_index, rest = divmod(index, chairs_tfds.VIEWS_PER_CHAIR)
    azimuth_index, elevation_index = divmod(rest, 2)
    assert record['label_chair'] == chair_index
    assert record['label_azimuth'] == azimuth_index
    assert record['label_elevation'] == elevation_index
    assert record['chair_folder'] == sorted(CHAIRS)[chair_index].encode()
    assert record['value_azimuth'] == chairs_tfds.AZIMUTHS[azimuth_index]
    assert record['value_elevation'] == (20, 30)[elevation_index]
    assert record['image'].dtype == np.uint8
    colour = _colour(chair_index, azimuth_index, elevation_index)
    np.testing.assert_array_equal(record['image'],
                                  _render(colour)[CROP, CROP])


class _Chairs3dGeneric(chairs_tfds.Chairs3d):
  """Chairs3d written by TFDS's generic writer instead of the override."""
  name = 'chairs3d_generic'

  def _generate_splits(self, dl_manager, download_config):
    return tfds.core.GeneratorBasedBuilder._generate_splits(
        self, dl_manager, download_config)


def test_prepare_writes_the_records_of_tfds_generic_writer(data_dir,
                                                            chair_members):
  write_tar(chairs_tfds.manual_archive_path(data_dir), chair_members)

  ours = _prepare(data_dir).as_data_source()['train']
  generic_builder = _Chairs3dGeneric(data_dir=data_dir)
  generic_builder.download_and_prepare()
  generic = generic_builder.as_data_source()['train']

  assert len(ours) == len(generic)
  for index in range(len(ours)):
    for name, value in ours[index].items():
      np.testing.assert_array_equal(value, generic[index][name])


def test_azimuths_are_the_31_in_the_archive_names():
  assert chairs_tfds.AZIMUTHS[:6] == (0, 11, 23, 34, 46, 58)
  assert chairs_tfds.AZIMUTHS[-3:] == (325, 336, 348)
  assert len(chairs_tfds.AZIMUTHS) == 31


def test_manual_archive_path_is_in_tfds_manual_dir(tmp_path):
  assert chairs_tfds.manual_archive_path(tmp_path) == (
      tmp_path / 'downloads' / 'manual' / 'rendered_chairs.tar')


# --------------------------------------------------------------- failures


@pytest.mark.parametrize('manual_dir_exists', [False, True])
def test_missing_archive_names_expected_path(data_dir, manual_dir_exists):
  # TFDS's own check covers only a missing or empty manual dir.
  if manual_dir_exists:
    manual_dir = chairs_tfds.manual_archive_path(data_dir).parent
    (manual_dir / 'some_other_dataset').mkdir(parents=True)

  _assert_prepare_fails(data_dir, chairs_tfds.ARCHIVE_URL)


@pytest.mark.parametrize('cut', ['half', 'before_last_chair'])
def test_truncated_archive_names_file(data_dir, chair_members, cut):
  archive = chairs_tfds.manual_archive_path(data_dir)
  write_tar(archive, chair_members)
  data = archive.read_bytes()
  if cut == 'half':
    length = len(data) // 2
  else:
    # At a header boundary tarfile stops listing without complaint, and the
    # two chairs left are complete.
    with tarfile.open(archive) as tar:
      length = next(m.offset for m in tar.getmembers()
                    if m.name.startswith(f'rendered_chairs/{CHAIRS[-1]}/'))
  archive.write_bytes(data[:length])

  _assert_prepare_fails(data_dir, 'truncated')


def test_file_that_is_not_a_tar_names_file(data_dir):
  archive = chairs_tfds.manual_archive_path(data_dir)
  archive.parent.mkdir(parents=True)
  archive.write_bytes(np.random.default_rng(0).bytes(10_000))

  _assert_prepare_fails(data_dir, 'cannot read')


def test_unrelated_archive_is_rejected(data_dir):
  write_tar(chairs_tfds.manual_archive_path(data_dir), [
      ('holiday/photos/beach.png', _png(_render((0, 0, 255)))),
      ('holiday/notes.txt', b'sunny'),
  ])

  _assert_prepare_fails(data_dir, 'no 3D Chairs renders',
                        'rendered_chairs/<chair>/renders/')


@pytest.mark.parametrize('name', [
    '../evil.png',
    'rendered_chairs/../../evil.png',
    'ABSOLUTE',
])
def test_unsafe_member_is_rejected(data_dir, chair_members, name):
  outside = data_dir.parent / 'outside' / 'evil.png'
  if name == 'ABSOLUTE':
    name = str(outside)
  write_tar(chairs_tfds.manual_archive_path(data_dir),
             chair_members + [(name, _png(_render((1, 2, 3))))])

  _assert_prepare_fails(data_dir, repr(name))
  assert not outside.exists()
  assert not (data_dir.parent.parent / 'evil.png').exists()


def test_chair_with_a_missing_view_is_rejected(data_dir, chair_members):
  missing = _render_name(CHAIRS[1], azimuth_index=1, elevation_index=1)
  write_tar(chairs_tfds.manual_archive_path(data_dir),
             [m for m in chair_members if m[0] != missing])

  _assert_prepare_fails(data_dir, f'chair {CHAIRS[1]} lacks 1 of its 62 views',
                        'p030_t011')


@pytest.mark.parametrize('extra_name, message', [
    ('rendered_chairs/1a2b/renders/image_031_p030_t355_r096.png',
     'not one of the 62 rendered views'),
    ('rendered_chairs/1a2b/renders/image_099_p020_t000_r096.png',
     'repeats the view'),
])
def test_chair_with_a_wrong_view_is_rejected(data_dir, chair_members,
                                             extra_name, message):
  write_tar(chairs_tfds.manual_archive_path(data_dir),
             chair_members + [(extra_name, _png(_render((1, 2, 3))))])

  _assert_prepare_fails(data_dir, extra_name, message)


def test_render_that_does_not_decode_is_rejected(data_dir, chair_members):
  # Detected while records are being generated, after the name checks pass.
  broken = _render_name(CHAIRS[2], azimuth_index=30, elevation_index=0)
  write_tar(chairs_tfds.manual_archive_path(data_dir), [
      (name, data[:len(data) // 2] if name == broken else data)
      for name, data in chair_members])

  _assert_prepare_fails(data_dir, broken, 'cannot decode')


def test_builder_has_no_configs(data_dir):
  assert isinstance(chairs_tfds.builder(data_dir=data_dir),
                    chairs_tfds.Chairs3d)
  with pytest.raises(ValueError, match=re.escape("'tiny'")):
    chairs_tfds.builder('tiny', data_dir)


# ------------------------------------------------- through the data set registry


def test_chairs_data_set_and_ground_truth(data_dir, chair_members):
  write_tar(chairs_tfds.manual_archive_path(data_dir), chair_members)
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, 'chairs')
  config.data_dir = str(data_dir)
  config = experiment_config.resolve(config)
  dataset = open_configured(config)
  assert (dataset.source, dataset.num_records) == ('real', 3 * 62)
  assert dataset.observation_shape == (64, 64, 3) == (
      (64, 64, config.num_channels))
  truth = dataset.ground_truth()
  assert truth.factor_names == ('chair', 'azimuth', 'elevation')
  assert truth.factors_num_values == [3, 31, 2]
  assert truth.num_missing_combinations == 0
  factors = truth.sample_factors(20, np.random.RandomState(0))
  observations = truth.sample_observations_from_factors(factors, None)
  # Each observation's centre square carries its own (chair, azimuth,
  # elevation) colour: the table found the right record.
  for observation, (chair, azimuth, elevation) in zip(observations, factors):
    np.testing.assert_allclose(observation[32, 32] * 255,
                               _colour(chair, azimuth, elevation), atol=1)


def test_chairs_data_set_without_archive_names_the_place(data_dir):
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, 'chairs')
  config.data_dir = str(data_dir)
  with pytest.raises(chairs_tfds.ChairsArchiveError,
                     match='downloads/manual/rendered_chairs.tar'):
    open_configured(config)
