"""config.data_on_device: the host pipeline's batches, gathered on the device.

Bit-for-bit equality with input_pipeline.py's batches (from the start, resumed,
on a subset, across chunks of positions and epoch ends), the storage form
(uint8 where exact, else float32), the refusals, and a training run that
ends with the same parameters and losses either way.
"""

import dataclasses
import itertools
import os

from absl import logging as absl_logging
import jax
import numpy as np
import pytest

from bvae_jax import config_defaults
from bvae_jax.core import devices
from bvae_jax.datasets import input_pipeline
from bvae_jax import experiment_config
from bvae_jax.training import device_data
from bvae_jax.training import train
from event_files import read_scalars
from tiny_configs import tiny_config
from tiny_configs import open_configured

BATCH = 16
STEPS = 8


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='module')
def mesh():
  assert jax.device_count() == 2  # tests/conftest.py: batches really split.
  return devices.create_mesh()


@pytest.fixture
def small_chunks(monkeypatch):
  """3 steps of positions a chunk, so a few steps cross chunk boundaries."""
  monkeypatch.setattr(device_data, '_POSITIONS_PER_CHUNK', 3 * BATCH)


def make_config(data_dir, **overrides):
  return tiny_config(data_dir, batch_size=BATCH, seed=7, **overrides)


def host_batches(config, start_step):
  iterator = input_pipeline.create_train_iterator(
      open_configured(config), **input_pipeline.batch_order(config),
      start_step=start_step, process_index=0, process_count=1)
  return [batch['image'] for batch in itertools.islice(iterator, STEPS)]


def device_batches(config, mesh, start_step, **kwargs):
  batches = device_data.create_device_batches(
      open_configured(config), mesh, **input_pipeline.batch_order(config),
      start_step=start_step, **kwargs)
  arrays = list(itertools.islice(batches, STEPS))
  batches.close()
  assert all(a.sharding == devices.batch_sharded(mesh) for a in arrays)
  return [np.asarray(jax.device_get(a)) for a in arrays]


def assert_bitwise_equal(actual, expected):
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    assert a.dtype == e.dtype == np.float32 and a.shape == e.shape
    np.testing.assert_array_equal(a.view(np.uint32), e.view(np.uint32))


@pytest.mark.parametrize('start_step, subset', [
    (0, 0),
    (4, 0),  # Resumed inside a chunk of positions.
    (179, 0),  # 179 · 16 records: the tiny set's first epoch ends at step 179.
    (5, 100),  # A 100-record subset: an epoch ends every 6.25 steps.
])
def test_batches_equal_the_host_pipelines_bit_for_bit(data_dir, mesh,
                                                     small_chunks, start_step,
                                                     subset):
  config = make_config(data_dir, train_subset_size=subset)
  assert_bitwise_equal(device_batches(config, mesh, start_step),
                       host_batches(config, start_step))


@pytest.mark.parametrize('stacked', [True, False])
def test_member_streams_equal_each_seeds_host_pipeline(data_dir, small_chunks,
                                                       stacked):
  # A sweep whose members read their own batches: one copy of the records,
  # one stream per seed, on a (members 2, data 1) mesh when stacked.
  seeds, start_step = (7, 3), 4
  if stacked:
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]).reshape(2, 1),
                             ('members', devices.DATA_AXIS))
    sharding = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec('members', devices.DATA_AXIS))
  else:
    mesh = devices.create_mesh()
    sharding = devices.batch_sharded(mesh)
  config = make_config(data_dir)
  batches = device_data.create_member_device_batches(
      open_configured(config), mesh, batch_size=BATCH, seeds=seeds,
      start_step=start_step, sharding=sharding, stacked=stacked)
  steps = list(itertools.islice(batches, STEPS))
  batches.close()
  for index, seed in enumerate(seeds):
    if stacked:
      assert all(step.sharding == sharding for step in steps)
      member = [np.asarray(jax.device_get(step))[index] for step in steps]
    else:
      assert all(step[index].sharding == sharding for step in steps)
      member = [np.asarray(jax.device_get(step[index])) for step in steps]
    seed_config = tiny_config(data_dir, batch_size=BATCH, seed=seed)
    assert_bitwise_equal(member, host_batches(seed_config, start_step))


def test_member_streams_share_worker_processes_and_close_ends_them(
    data_dir, mesh, small_chunks, monkeypatch):
  shutdowns = []
  shutdown = device_data.Workers.shutdown
  monkeypatch.setattr(device_data.Workers, 'shutdown',
                      lambda self: shutdowns.append(self) or shutdown(self))
  config = make_config(data_dir)
  batches = device_data.create_member_device_batches(
      open_configured(config), mesh, batch_size=BATCH, seeds=(7, 7),
      start_step=2, sharding=devices.batch_sharded(mesh), stacked=False,
      workers=1)
  steps = list(itertools.islice(batches, STEPS))
  batches.close()
  assert len(shutdowns) == 1 and shutdowns[0].count == 1  # One shared pool.
  expected = host_batches(config, 2)
  for member in range(2):
    assert_bitwise_equal([np.asarray(jax.device_get(s[member])) for s in steps],
                         expected)
  # Closed before its first batch (a resumed run that has no step left, or
  # an error before the loop): the workers end all the same.
  unused = device_data.create_device_batches(
      open_configured(config), mesh, **input_pipeline.batch_order(config),
      workers=1)
  unused.close()
  assert len(shutdowns) == 2
  with pytest.raises(StopIteration):
    next(unused)


def test_worker_processes_read_and_compute_the_same(data_dir, mesh,
                                                    small_chunks, monkeypatch):
  monkeypatch.setattr(device_data, '_READ_CHUNK', 1000)  # 3 chunks of records.
  config = make_config(data_dir)
  assert_bitwise_equal(device_batches(config, mesh, 4, workers=1),
                       host_batches(config, 4))


def test_dsprites_is_stored_as_uint8_and_logged(data_dir, mesh, caplog):
  dataset = open_configured(make_config(data_dir))
  absl_logging.get_absl_logger().propagate = True
  with caplog.at_level('INFO'):
    images, scale = device_data.load_images(
        dataset, np.arange(dataset.num_records), mesh)
  assert images.dtype == np.uint8 and scale == 1.0
  assert images.sharding == devices.replicated(mesh)
  assert ('data_on_device: 2869 records of dsprites_procedural/tiny as uint8 '
          '(× 1): 11.2 MiB on each of 2 device(s)') in caplog.text


@dataclasses.dataclass
class FakeReader:
  images: np.ndarray

  @property
  def num_records(self):
    return len(self.images)

  def read_images(self, indices):
    return self.images[np.asarray(indices)]


@dataclasses.dataclass
class FakeDataset:
  images: FakeReader
  name: str = 'fake'
  observation_shape: tuple[int, int, int] = (4, 4, 3)

  @property
  def num_records(self):
    return self.images.num_records


def grey_levels(rng, num, top):
  """float32 images as a reader of 8-bit records with white level `top` has."""
  stored = rng.integers(0, top + 1, size=(num, 4, 4, 3))
  return stored.astype(np.float32) * np.float32(1.0 / top)


@pytest.mark.parametrize('kind, dtype', [
    ('grey', np.uint8),  # 0..255 with scale 1/255.
    ('continuous', np.float32),  # No 8-bit form.
    # Chunk 1 proposes scale 1; chunk 2 breaks it.
    ('binary_then_grey', np.float32),
    ('grey_then_binary', np.uint8),  # 255 · float32(1/255) is 1.0 exactly.
    ('continuous_then_grey', np.float32),  # Later 8-bit chunks, as float32.
])
def test_storage_reproduces_the_readers_images(mesh, monkeypatch, kind, dtype):
  monkeypatch.setattr(device_data, '_READ_CHUNK', 8)
  rng = np.random.default_rng(0)
  images = {
      'grey': lambda: grey_levels(rng, 20, 255),
      'continuous': lambda: rng.uniform(size=(20, 4, 4, 3)).astype(np.float32),
      'binary_then_grey': lambda: np.concatenate(
          [grey_levels(rng, 8, 1), grey_levels(rng, 12, 255)]),
      'grey_then_binary': lambda: np.concatenate(
          [grey_levels(rng, 8, 255), grey_levels(rng, 12, 1)]),
      'continuous_then_grey': lambda: np.concatenate(
          [rng.uniform(size=(8, 4, 4, 3)).astype(np.float32),
           grey_levels(rng, 12, 255)]),
  }[kind]()
  # A first chunk (8 records) of records 0..7, then some of 8..19.
  records = np.array([3, 0, 7, 1, 5, 2, 6, 4, 19, 11, 8, 15])
  stored, scale = device_data.load_images(
      FakeDataset(FakeReader(images)), records, mesh)
  assert stored.dtype == dtype
  assert (scale is None) == (stored.dtype == np.float32)
  restored = np.asarray(jax.device_get(stored)).astype(np.float32)
  if scale is not None:
    restored *= np.float32(scale)
  np.testing.assert_array_equal(restored.view(np.uint32),
                                images[records].view(np.uint32))


def test_refuses_data_that_does_not_fit(data_dir, mesh, monkeypatch, tmp_path):
  monkeypatch.setattr(device_data, '_memory_budget',
                      lambda device, count: (1_000_000, f'{device} (test)'))
  with pytest.raises(ValueError, match=r'config.data_on_device=True needs '
                     r'0.01 GiB .* than the 0.00 GiB allowed'):
    train.train_and_evaluate(make_config(data_dir, data_on_device=True),
                             str(tmp_path))
  assert not os.path.exists(tmp_path / 'config.json')  # Refused before writing.


def test_refuses_several_processes(data_dir, mesh, monkeypatch):
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  config = make_config(data_dir)
  with pytest.raises(ValueError, match='data_on_device=True is single-process '
                     'only for now; this job has 2 processes'):
    device_data.create_device_batches(
        open_configured(config), mesh, **input_pipeline.batch_order(config))


def test_config_field_is_validated():
  config = config_defaults.base_config()
  assert config.data_on_device is False
  config.data_on_device = None
  with pytest.raises(ValueError, match='config.data_on_device must be True or '
                     'False, got None'):
    experiment_config.resolve(config)


@pytest.mark.slow
def test_training_is_identical_with_data_on_device(data_dir, tmp_path,
                                                   users_xla_optimizations):
  tags = ('loss', 'reconstruction', 'kl_total', 'grad_norm')
  results = {}
  for on_device in (False, True):
    workdir = str(tmp_path / str(on_device))
    state = train.train_and_evaluate(
        tiny_config(data_dir, data_on_device=on_device), workdir)
    params = jax.tree_util.tree_leaves(jax.device_get(state.params))
    results[on_device] = (params, read_scalars(workdir, tags))
  (host_params, host_scalars), (device_params, device_scalars) = (
      results[False], results[True])
  for host, device in zip(host_params, device_params):
    np.testing.assert_array_equal(host, device)
  assert host_scalars == device_scalars
  assert all(len(host_scalars[tag]) == 3 for tag in tags)  # Steps 2, 4, 6.
