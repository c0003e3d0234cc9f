"""Tests of the data-set specs and the registry built from them.

Every spec must agree with what its data set opens to (factor names and
sizes, image shape, ground truth or none) and with what `set_dataset` applies;
the data-source rule (`registry.open_source`) is checked on stand-in sources.
Data sets are opened only where no download is needed: procedural dSprites,
coloured dSprites and Gaussian blobs as they are, chairs from a tiny archive
(tests/test_chairs_tfds.py builds it), shapes3d and celeb_a on TFDS's mock
data.
"""

import logging
import types

import pytest
import tensorflow_datasets as tfds

import test_chairs_tfds
from bvae_jax import config_defaults
from bvae_jax.datasets import chairs_tfds
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import registry
from bvae_jax import experiment_config
from tiny_configs import open_configured


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


def _open(name, data_dir, source='auto'):
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, name)
  config.dataset_source = source
  config.data_dir = str(data_dir)
  return open_configured(config)


def _assert_agrees_with_spec(dataset, spec):
  assert dataset.observation_shape == spec.image_shape
  images = dataset.images.read_images([0, dataset.num_records - 1])
  assert images.shape == (2,) + spec.image_shape
  assert dataset.describe()['has_ground_truth'] == (
      spec.factor_names is not None)
  if spec.factor_names is None:
    return
  truth = dataset.ground_truth()
  assert truth.factor_names == spec.factor_names
  assert len(truth.factors_num_values) == len(spec.factor_sizes)
  for opened, stated in zip(truth.factors_num_values, spec.factor_sizes):
    assert stated is None or opened == stated
  assert truth.observation_shape == spec.image_shape


@pytest.mark.parametrize('name', [
    'dsprites/tiny', 'color_dsprites/tiny', 'dsprites_procedural/tiny',
    'gaussian_blobs'])
def test_procedural_sets_open_as_their_spec_says(name, data_dir):
  _assert_agrees_with_spec(_open(name, data_dir, 'procedural'),
                           registry.get_spec(name))


def test_chairs_opens_as_its_spec_says(tmp_path):
  test_chairs_tfds.write_tar(chairs_tfds.manual_archive_path(tmp_path),
                             test_chairs_tfds.tiny_archive_members())
  dataset = _open('chairs', tmp_path)
  _assert_agrees_with_spec(dataset, chairs_tfds.SPEC)
  # The size the spec leaves open is the archive's number of chairs.
  assert dataset.ground_truth().factors_num_values[0] == len(
      test_chairs_tfds.CHAIRS)


@pytest.mark.parametrize('name', ['shapes3d', 'celeb_a'])
def test_catalog_sets_open_as_their_spec_says(name, tmp_path):
  with tfds.testing.mock_data(num_examples=4,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    _assert_agrees_with_spec(_open(name, tmp_path), registry.get_spec(name))


@pytest.mark.parametrize('name', registry.DATASET_NAMES)
def test_set_dataset_applies_the_spec(name):
  spec = registry.get_spec(name)
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, name)
  config = experiment_config.resolve(config)
  assert config.dataset == name
  assert config.num_channels == spec.image_shape[-1]
  for field, value in spec.config_updates().items():
    assert config[field] == value
  assert experiment_config.DATASET_SETTINGS[spec.name] == (
      spec.config_updates())


def test_registry_lists_every_variant_of_every_spec_once():
  variants = [v for spec in registry.SPECS for v in spec.variants]
  assert registry.DATASET_NAMES == tuple(variants)
  assert len(set(variants)) == len(variants)
  assert len({spec.name for spec in registry.SPECS}) == len(registry.SPECS)


def test_validation_refuses_a_source_the_data_set_lacks():
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, 'gaussian_blobs')
  config.dataset_source = 'real'
  with pytest.raises(ValueError, match="config.dataset_source must be 'auto' "
                     "or 'procedural' for data set 'gaussian_blobs'"):
    experiment_config.resolve(config)


def test_a_spec_with_mismatched_factors_is_refused():
  with pytest.raises(ValueError, match='do not match the factor sizes'):
    dataset_spec.DatasetSpec(
        name='x', variants=('x',),
        sources=registry.get_spec('gaussian_blobs').sources,
        factor_names=('a', 'b'), factor_sizes=(2,), image_shape=(8, 8, 1),
        config_settings={})


# --------------------------------------------- the data-source rule itself


def _stand_in_spec(calls, failing=(), subsets=None):
  """A spec whose sources record their calls; names in `failing` refuse."""

  def source(name, kind, source_subsets=None):
    def open_fn(subset, data_dir):
      calls.append((name, subset, data_dir))
      if name in failing:
        raise dataset_spec.SourceUnavailableError(f'{name} is down')
      builder = types.SimpleNamespace(
          info=types.SimpleNamespace(full_name=f'{name}/1.0.0'),
          data_dir='DIR')
      return dataset_spec.Opened(builder=builder, images=None,
                                 make_ground_truth=None)
    why = '; {why}' if kind == 'procedural' else ''
    return dataset_spec.Source(name, kind, open_fn,
                               name + ' ({tfds_name} in {data_dir}' + why + ')',
                               subsets=source_subsets)

  return dataset_spec.DatasetSpec(
      name='stand_in', variants=('stand_in', 'stand_in/tiny'),
      sources=(source('first', 'real', subsets), source('second', 'real'),
               source('drawn', 'procedural')),
      factor_names=None, factor_sizes=None, image_shape=(8, 8, 1),
      config_settings={}, no_real_data_help='Get {subset} somewhere.')


def test_auto_takes_the_first_real_source_that_opens(caplog):
  calls = []
  with caplog.at_level(logging.INFO):
    source, _ = registry.open_source(
        _stand_in_spec(calls, failing=('first',)), 'tiny', 'auto', 'D')
  assert source.name == 'second'
  assert calls == [('first', 'tiny', 'D'), ('second', 'tiny', 'D')]
  lines = [r.message for r in caplog.records if 'source =' in r.message]
  assert lines == ['Data set stand_in: source = second (second/1.0.0 in DIR).']


def test_auto_falls_back_naming_every_reason(caplog):
  calls = []
  with caplog.at_level(logging.INFO):
    source, _ = registry.open_source(
        _stand_in_spec(calls, failing=('first', 'second')), 'full', 'auto',
        None)
  assert source.name == 'drawn'
  assert [r.message for r in caplog.records if 'source =' in r.message] == [
      'Data set stand_in: source = drawn (drawn/1.0.0 in DIR; fallback: '
      'first is down; second is down).']


def test_real_never_falls_back_and_says_how():
  calls = []
  with pytest.raises(registry.DatasetUnavailableError,
                     match=r'stand_in: no real data \(second is down\)\. '
                     'Get tiny somewhere.'):
    registry.open_source(
        _stand_in_spec(calls, failing=('second',), subsets=('full',)),
        'tiny', 'real', None)
  # 'first' holds only 'full': skipped, without a reason.
  assert [name for name, _, _ in calls] == ['second']


def test_procedural_opens_only_the_procedural_source(caplog):
  calls = []
  with caplog.at_level(logging.INFO):
    source, _ = registry.open_source(_stand_in_spec(calls), 'full',
                                     'procedural', None)
  assert source.name == 'drawn' and [c[0] for c in calls] == ['drawn']
  assert any('(drawn/1.0.0 in DIR; as configured)' in r.message
             for r in caplog.records)


def test_a_source_kind_the_set_lacks_is_refused():
  spec = registry.get_spec('chairs')
  with pytest.raises(ValueError, match="'procedural': data set 'chairs' has "
                     "only a real source; use 'auto'"):
    registry.open_source(spec, 'full', 'procedural', None)
  with pytest.raises(ValueError, match='dataset_source must be one of'):
    registry.open_source(spec, 'full', 'internet', None)
