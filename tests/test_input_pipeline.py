"""Tests of the grain input pipeline on dsprites_procedural/tiny."""

import itertools
import logging

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds
from bvae_jax.datasets import input_pipeline
from bvae_jax.datasets import records
from tiny_configs import open_configured

TINY_SIZE = 2_869
TINY_STRIDE = 257  # Record r of tiny is image 257·r of the full set.
BATCH = 16


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def make_config(data_dir, **overrides):
  config = ml_collections.ConfigDict({
      'dataset': 'dsprites_procedural/tiny',
      'data_dir': data_dir,
      'batch_size': BATCH,
      'seed': 7,
  })
  config.update(overrides)
  return config


def iterator_of(config, **kwargs):
  """The training iterator of `config`, as train.py builds it."""
  return input_pipeline.create_train_iterator(
      open_configured(config), **input_pipeline.batch_order(config), **kwargs)


def take(config, num_batches, **kwargs):
  """The first `num_batches` images arrays of a fresh iterator."""
  iterator = iterator_of(
      config, process_index=kwargs.pop('process_index', 0),
      process_count=kwargs.pop('process_count', 1), **kwargs)
  return [batch['image'] for batch in itertools.islice(iterator, num_batches)]


def test_batch_format(data_dir):
  (images,) = take(make_config(data_dir), 1)
  assert images.shape == (BATCH, 64, 64, 1)
  assert images.dtype == np.float32
  assert set(np.unique(images)) == {0.0, 1.0}


def test_batches_are_the_rendered_images_of_the_shuffled_indices(data_dir):
  config = make_config(data_dir)
  batches = take(config, 2)
  indices = input_pipeline.batch_record_indices(
      TINY_SIZE, seed=config.seed, global_batch_size=BATCH)
  for step, images in enumerate(batches):
    factors = dsprites.index_to_factors(TINY_STRIDE * indices[step])
    np.testing.assert_array_equal(images, dsprites.render(factors))


def test_record_order_golden():
  # Pins grain's shuffle: if it changes, resumed runs would see other data.
  indices = input_pipeline.batch_record_indices(
      TINY_SIZE, seed=7, global_batch_size=BATCH)
  np.testing.assert_array_equal(indices[0][:6],
                                [668, 84, 1691, 284, 1025, 1657])


def test_each_epoch_is_a_new_permutation():
  indices = input_pipeline.batch_record_indices(
      TINY_SIZE, seed=7, global_batch_size=BATCH)
  steps_for_two_epochs = 2 * TINY_SIZE // BATCH + 1
  stream = np.concatenate([indices[s] for s in range(steps_for_two_epochs)])
  first, second = stream[:TINY_SIZE], stream[TINY_SIZE:2 * TINY_SIZE]
  np.testing.assert_array_equal(np.sort(first), np.arange(TINY_SIZE))
  np.testing.assert_array_equal(np.sort(second), np.arange(TINY_SIZE))
  assert np.mean(first == second) < 0.01


def test_same_seed_same_batches_other_seed_other_batches(data_dir):
  first = take(make_config(data_dir), 3)
  again = take(make_config(data_dir), 3)
  other = take(make_config(data_dir, seed=8), 3)
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


@pytest.mark.parametrize('start_step', [5, 179])  # 179: past an epoch's end.
def test_start_step_resumes_the_same_sequence(data_dir, start_step):
  config = make_config(data_dir)
  from_zero = take(config, start_step + 3)
  resumed = take(config, 3, start_step=start_step)
  np.testing.assert_array_equal(resumed, from_zero[start_step:])


def test_process_slices_concatenate_to_the_global_batch(data_dir):
  config = make_config(data_dir)
  whole = take(config, 3)
  slices = [take(config, 3, process_index=p, process_count=4)
            for p in range(4)]
  for step in range(3):
    assert slices[0][step].shape == (BATCH // 4, 64, 64, 1)
    np.testing.assert_array_equal(
        np.concatenate([s[step] for s in slices]), whole[step])


def test_a_process_reads_only_its_own_rows(data_dir, monkeypatch):
  requested = []
  original = records.ArrayRecordSplit.__getitems__

  def recording_getitems(self, indices):
    requested.append(len(indices))
    return original(self, indices)

  monkeypatch.setattr(records.ArrayRecordSplit, '__getitems__',
                      recording_getitems)
  take(make_config(data_dir), 2, process_index=1, process_count=4)
  assert requested and set(requested) == {BATCH // 4}


def test_process_defaults_come_from_jax(data_dir):
  iterator = iterator_of(make_config(data_dir))
  assert next(iterator)['image'].shape == (BATCH, 64, 64, 1)


@pytest.mark.parametrize('overrides, kwargs, message', [
    ({'dataset': 'mnist'}, {}, "unknown dataset 'mnist'; known: dsprites, "
     "dsprites/tiny, color_dsprites, .*chairs, shapes3d, celeb_a"),
    ({'batch_size': 10}, {'process_count': 4}, 'not divisible'),
    ({}, {'process_index': 4, 'process_count': 4}, 'process_index 4'),
    ({}, {'start_step': -1}, 'start_step'),
])
def test_bad_arguments(data_dir, overrides, kwargs, message):
  kwargs = {'process_index': 0, 'process_count': 1, **kwargs}
  with pytest.raises(ValueError, match=message):
    iterator_of(make_config(data_dir, **overrides), **kwargs)


def test_batch_order_reads_data_seed_else_seed_and_the_subset():
  config = ml_collections.ConfigDict({'batch_size': 32, 'seed': 3})
  assert input_pipeline.batch_order(config) == {
      'batch_size': 32, 'seed': 3, 'subset_size': 0}
  config.data_seed = None
  config.train_subset_size = 0
  assert input_pipeline.batch_order(config)['seed'] == 3
  config.data_seed = 11
  config.train_subset_size = 500
  assert input_pipeline.batch_order(config) == {
      'batch_size': 32, 'seed': 11, 'subset_size': 500}


def test_subset_is_fixed_and_larger_than_the_data_set_is_refused(data_dir):
  dataset = open_configured(make_config(data_dir))
  subset = input_pipeline.training_records(dataset, 100)
  assert len(set(subset)) == 100 and subset.max() < TINY_SIZE
  np.testing.assert_array_equal(
      subset, input_pipeline.training_records(dataset, 100))
  np.testing.assert_array_equal(input_pipeline.training_records(dataset),
                                np.arange(TINY_SIZE))
  with pytest.raises(ValueError, match=(
      f'train_subset_size={TINY_SIZE + 1} exceeds the {TINY_SIZE} records of '
      "data set 'dsprites_procedural/tiny'")):
    input_pipeline.training_records(dataset, TINY_SIZE + 1)


def test_fixed_images_are_fixed_and_ignore_the_seed(data_dir):
  images = input_pipeline.fixed_images(open_configured(make_config(data_dir)),
                                       10)
  again = input_pipeline.fixed_images(
      open_configured(make_config(data_dir, seed=123)), 10)
  assert images.shape == (10, 64, 64, 1) and images.dtype == np.float32
  np.testing.assert_array_equal(images, again)
  assert len({image.tobytes() for image in images}) == 10
  with pytest.raises(ValueError, match='num must be in'):
    input_pipeline.fixed_images(open_configured(make_config(data_dir)),
                                TINY_SIZE + 1)


def test_prepares_on_first_use_and_says_so(tmp_path, caplog):
  config = make_config(str(tmp_path))
  with caplog.at_level(logging.INFO):
    input_pipeline.fixed_images(open_configured(config), 1)
  prepared = [r for r in caplog.records if 'Prepared dsprites_procedural' in r.message]
  assert len(prepared) == 1
  assert 'dsprites_procedural/tiny/2.0.0' in prepared[0].message
  caplog.clear()
  with caplog.at_level(logging.INFO):
    input_pipeline.fixed_images(open_configured(config), 1)
  assert not [r for r in caplog.records if 'Prepared dsprites_procedural' in r.message]


def test_array_record_split_matches_the_tfds_data_source(data_dir):
  builder = open_configured(make_config(data_dir)).builder
  tfds_source = builder.as_data_source(
      'train', deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
  split = records.ArrayRecordSplit(builder, 'train')
  assert len(split) == len(tfds_source) == TINY_SIZE
  indices = [TINY_SIZE - 1, 0, 1234, 7]
  assert split.__getitems__(indices) == [tfds_source[i] for i in indices]
  assert split[5] == tfds_source[5]
  with pytest.raises(IndexError):
    split.__getitems__([TINY_SIZE])


def test_array_record_split_reads_sub_split_file_instructions(data_dir):
  # A split slice ('train[10:20]') skips records inside the file.
  builder = dsprites_tfds.builder('tiny', data_dir)
  builder.download_and_prepare()
  full = records.ArrayRecordSplit(builder, 'train')
  part = records.ArrayRecordSplit(builder, 'train[10:20]')
  assert len(part) == 10
  assert part.__getitems__(range(10)) == full.__getitems__(range(10, 20))
