"""Tests of where data sets come from: source selection, the official dSprites
file, and the TFDS catalog sets (dsprites, shapes3d, celeb_a) on mock data.

Nothing here touches the network: `dsprites_tfds._unreachable_reason` and TFDS's
download manager are replaced, and catalog sets are read through
`tfds.testing.mock_data`, which generates examples with the catalog builders'
own feature names and dtypes.
"""

import logging
import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters

from bvae_jax import config_defaults
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import registry
from bvae_jax.datasets import tfds_catalog
from tiny_configs import open_configured

TINY_INDICES = np.arange(0, dsprites.NUM_IMAGES, 257)


def make_config(data_dir, dataset='dsprites/tiny', source='auto'):
  config = config_defaults.base_config()
  config.dataset = dataset
  config.dataset_source = source
  config.data_dir = data_dir
  return config


def write_npz(path, images_fn, classes=None):
  """Writes an .npz with the official layout, imgs streamed chunk by chunk."""
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as npz:
    with npz.open('imgs.npy', 'w', force_zip64=True) as stream:
      np.lib.format.write_array_header_1_0(stream, {
          'descr': '|u1', 'fortran_order': False,
          'shape': (dsprites.NUM_IMAGES, 64, 64)})
      for start in range(0, dsprites.NUM_IMAGES, 65_536):
        indices = np.arange(start, min(start + 65_536, dsprites.NUM_IMAGES))
        stream.write(images_fn(indices).tobytes())
    if classes is None:
      classes = np.concatenate(
          [np.zeros((dsprites.NUM_IMAGES, 1), np.int64),
           dsprites.index_to_factors(np.arange(dsprites.NUM_IMAGES))], axis=1)
    with npz.open('latents_classes.npy', 'w') as stream:
      np.lib.format.write_array(stream, classes)


def fake_official_images(indices):
  """Images unlike the renderer's, so a test can tell the sources apart:
  the procedural sprite turned upside down."""
  return dsprites.render(dsprites.index_to_factors(indices))[:, ::-1, :, 0]


@pytest.fixture(scope='module')
def official_npz(tmp_path_factory):
  """A full-size file with the official layout (~46 MB, ~8 s to write)."""
  path = tmp_path_factory.mktemp('download') / 'dsprites_ndarray.npz'
  write_npz(path, fake_official_images)
  return str(path)


@pytest.fixture
def offline(monkeypatch):
  monkeypatch.setattr(dsprites_tfds, '_unreachable_reason',
                      lambda url: 'no network (test)')


@pytest.fixture
def online_with(monkeypatch):
  """Pretends GitHub answers and serves `path` as the official file."""
  downloads = []

  def serve(path):
    monkeypatch.setattr(dsprites_tfds, '_unreachable_reason', lambda url: None)

    def download(self, url):
      downloads.append(url)
      return path
    monkeypatch.setattr(tfds.download.DownloadManager, 'download', download)
    return downloads
  return serve


# ------------------------------------------------------- source selection


def test_auto_falls_back_to_procedural_offline_and_says_why(
    tmp_path, offline, caplog):
  with caplog.at_level(logging.INFO):
    dataset = open_configured(make_config(str(tmp_path)))
  assert dataset.source == 'procedural'
  assert dataset.builder.info.full_name == 'dsprites_procedural/tiny/2.0.0'
  lines = [r.message for r in caplog.records if 'source =' in r.message]
  assert len(lines) == 1
  assert 'procedural renderer' in lines[0]
  assert 'the official file cannot be downloaded (no network (test))' in lines[0]
  assert dataset.describe()['source'] == 'procedural'


def test_real_source_offline_is_an_error_naming_the_way_out(tmp_path, offline):
  with pytest.raises(registry.DatasetUnavailableError,
                     match="no real data .*no network.*dataset_source='procedural'"):
    open_configured(make_config(str(tmp_path), source='real'))
  # Nothing was prepared: no procedural fallback, no half-written official set.
  assert not (tmp_path / 'dsprites_procedural').exists()
  assert not (tmp_path / 'dsprites_official').exists()


def test_procedural_source_never_probes_the_network(tmp_path, monkeypatch):
  def fail(url):
    raise AssertionError('probed the network')
  monkeypatch.setattr(dsprites_tfds, '_unreachable_reason', fail)
  dataset = open_configured(make_config(str(tmp_path), source='procedural'))
  assert dataset.source == 'procedural'


@pytest.mark.slow
def test_auto_downloads_the_official_file_when_it_can(
    tmp_path, official_npz, online_with, caplog, monkeypatch):
  downloads = online_with(official_npz)
  with caplog.at_level(logging.INFO):
    dataset = open_configured(make_config(str(tmp_path)))
  assert downloads == [dsprites_tfds.OFFICIAL_NPZ_URL]
  assert dataset.source == 'official'
  assert dataset.builder.info.full_name == 'dsprites_official/tiny/1.0.0'
  assert any('source = official file' in r.message for r in caplog.records)
  # Record r of tiny is image 257·r of the official file, not the renderer's.
  records = dataset.images.read_images([0, 1, 2_868])
  np.testing.assert_array_equal(
      records[..., 0], fake_official_images(TINY_INDICES[[0, 1, 2_868]]))
  # The ground truth reads the official records.
  truth = dataset.ground_truth()
  factors = dsprites.index_to_factors(TINY_INDICES[[3, 99]])
  np.testing.assert_array_equal(
      truth.sample_observations_from_factors(factors, None)[..., 0],
      fake_official_images(TINY_INDICES[[3, 99]]))
  # Once prepared, it is used without the network.
  monkeypatch.setattr(dsprites_tfds, '_unreachable_reason', None)  # Not callable.
  again = open_configured(make_config(str(tmp_path), source='real'))
  assert again.source == 'official'


@pytest.mark.slow
def test_official_builder_records_match_tfds_generic_serializer(
    tmp_path, official_npz, online_with):
  online_with(official_npz)
  builder = dsprites_tfds.official_builder('tiny', str(tmp_path))
  builder.download_and_prepare()
  source = builder.as_data_source()['train']
  assert len(source) == 2_869
  reference = dict(builder._generate_examples(
      tfds.download.DownloadManager(download_dir=str(tmp_path))))
  for record in (0, 1_000, 2_868):
    example = source[record]
    expected = reference[int(TINY_INDICES[record])]
    for key, value in expected.items():
      np.testing.assert_array_equal(example[key], value, err_msg=key)


@pytest.mark.parametrize('breakage, message', [
    ('not_a_zip', 'not a readable dSprites .npz'),
    ('no_classes', "has no array 'latents_classes'"),
    ('shuffled', 'are not the 737,280 factor rows'),
    ('truncated', 'not a readable dSprites .npz'),
])
@pytest.mark.slow
def test_broken_official_files_are_errors_naming_the_file(
    tmp_path, official_npz, breakage, message):
  path = tmp_path / 'broken.npz'
  if breakage == 'not_a_zip':
    path.write_bytes(b'<html>rate limited</html>')
  elif breakage == 'no_classes':
    with zipfile.ZipFile(path, 'w') as npz:
      npz.writestr('imgs.npy', b'')
  elif breakage == 'shuffled':
    classes = np.zeros((dsprites.NUM_IMAGES, 6), np.int64)
    with zipfile.ZipFile(path, 'w') as npz:
      with npz.open('latents_classes.npy', 'w') as stream:
        np.lib.format.write_array(stream, classes)
      npz.writestr('imgs.npy', b'')
  else:
    data = open(official_npz, 'rb').read()
    path.write_bytes(data[:len(data) // 2])
  with pytest.raises(dsprites_tfds.DspritesFileError) as error:
    for _ in dsprites_tfds.official_npz_chunks(path, TINY_INDICES):
      pass
  assert str(path) in str(error.value)
  assert message in str(error.value)


def test_a_corrupt_download_is_an_error_and_leaves_nothing_half_written(
    tmp_path, online_with):
  bad = tmp_path / 'download.npz'
  bad.write_bytes(b'not a zip')
  online_with(str(bad))
  data_dir = tmp_path / 'data'
  with pytest.raises(dsprites_tfds.DspritesFileError, match='download.npz'):
    open_configured(make_config(str(data_dir)))
  # TFDS keeps only its builder-config note (.config/metadata.json); no
  # records, no version directory, no incomplete directory.
  leftovers = [str(p.relative_to(data_dir)) for p in data_dir.rglob('*')]
  assert not [p for p in leftovers if '1.0.0' in p or 'incomplete' in p]


def test_unknown_names_and_sources_are_listed(tmp_path):
  with pytest.raises(ValueError, match='known: dsprites, dsprites/tiny, '
                     'color_dsprites.*gaussian_blobs, chairs, shapes3d, celeb_a'):
    open_configured(make_config(str(tmp_path), dataset='mnist'))
  with pytest.raises(ValueError, match='dataset_source must be one of'):
    open_configured(make_config(str(tmp_path), source='fake'))
  with pytest.raises(ValueError, match="has only a real source"):
    open_configured(make_config(str(tmp_path), dataset='chairs',
                                      source='procedural'))


# ------------------------------------------------------------ TFDS catalog


@pytest.fixture
def mock_catalog(monkeypatch):
  """TFDS catalog builders answer with random examples of their features."""
  with tfds.testing.mock_data(num_examples=12,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    yield


def test_shapes3d_from_the_catalog(tmp_path, mock_catalog):
  config = make_config(str(tmp_path), dataset='shapes3d')
  dataset = open_configured(config)
  assert dataset.source == 'tfds_catalog'
  assert dataset.num_records == 12
  images = dataset.images.read_images([0, 11])
  assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
  assert 0.0 <= images.min() and images.max() <= 1.0
  truth = dataset.ground_truth()
  assert truth.factor_names == ('floor_hue', 'wall_hue', 'object_hue', 'scale',
                                'shape', 'orientation')
  assert truth.factors_num_values == [10, 10, 10, 8, 4, 15]
  # Mock records hold random (here distinct) labels: each record is found by
  # its own labels, through the table, not a search.
  labels = dataset.images.read_labels(tfds_catalog.SHAPES3D_LABELS)
  assert len({tuple(row) for row in labels.tolist()}) == 12
  np.testing.assert_array_equal(
      truth.sample_observations_from_factors(labels[[3, 7]], None),
      dataset.images.read_images([3, 7]))
  assert truth.num_missing_combinations == 480_000 - 12


def test_celeb_a_is_cropped_to_64_and_has_no_ground_truth(tmp_path, mock_catalog):
  dataset = open_configured(make_config(str(tmp_path), dataset='celeb_a'))
  images = dataset.images.read_images([0, 5])
  assert images.shape == (2, 64, 64, 3)
  with pytest.raises(ground_truth.NoGroundTruthError,
                     match="'celeb_a' has no ground-truth factors.*'shapes3d'"):
    dataset.ground_truth()


def test_celeba_crop_takes_the_central_square_then_resizes():
  image = np.zeros((218, 178, 3), np.uint8)
  top, left, size = tfds_catalog.CELEBA_CROP
  image[top:top + size, left:left + size] = 200  # The crop, and only it.
  out = tfds_catalog.celeba_crop_and_resize(image)
  assert out.shape == (64, 64, 3)
  assert (out == 200).all()


def test_catalog_dsprites_is_used_when_prepared(tmp_path, mock_catalog,
                                                monkeypatch, caplog):
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'is_prepared', lambda self: True)
  monkeypatch.setattr(tfds.core.DatasetInfo, 'file_format', property(
      lambda self: file_adapters.FileFormat.ARRAY_RECORD))
  with caplog.at_level(logging.INFO):
    dataset = open_configured(make_config(str(tmp_path), dataset='dsprites'))
  assert dataset.source == 'tfds_catalog'
  assert any('source = TFDS catalog dsprites' in r.message
             for r in caplog.records)
  truth = dataset.ground_truth()
  assert truth.factors_num_values == list(dsprites.FACTOR_SIZES)
  assert dataset.images.read_images([1]).shape == (1, 64, 64, 1)


def test_catalog_dsprites_as_tfrecord_is_skipped_with_a_reason(
    tmp_path, mock_catalog, monkeypatch):
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'is_prepared',
                      lambda self: self.name == 'dsprites')
  # The reason the data-source rule falls back with (the mock cannot prepare
  # the procedural fallback itself).
  with pytest.raises(dataset_spec.SourceUnavailableError) as error:
    dsprites_tfds.CATALOG_SOURCE.open_fn('full', str(tmp_path))
  assert "TFDS catalog 'dsprites'" in str(error.value)
  assert ('is stored as tfrecord; random access needs array_record'
          in str(error.value))


@pytest.mark.parametrize('name', ['shapes3d', 'celeb_a'])
def test_catalog_set_that_cannot_be_prepared_says_how(tmp_path, name, monkeypatch):
  def no_network(self, *args, **kwargs):
    raise ConnectionError('no network (test)')
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare',
                      no_network)
  with pytest.raises(registry.DatasetUnavailableError,
                     match=f'{name}: TFDS could not prepare it in .*no network'
                     '.*requirements-catalog.txt'):
    open_configured(make_config(str(tmp_path), dataset=name))
  assert not os.path.exists(tmp_path / name)
