"""How training opens its data set and records where the records came from."""

import json

import pytest

from bvae_jax import config_defaults
from bvae_jax.core import run_records
from bvae_jax.datasets import dsprites_tfds
from bvae_jax import experiment_config


def make_config(data_dir, dataset='dsprites/tiny', **overrides):
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, dataset)
  config.data_dir = data_dir
  config.update(overrides)
  return config


@pytest.fixture(autouse=True)
def offline(monkeypatch):
  monkeypatch.setattr(dsprites_tfds, '_unreachable_reason',
                      lambda url: 'offline')


def test_saved_config_holds_the_resolved_source(tmp_path):
  config = make_config(str(tmp_path))
  assert config.dataset_source == 'auto'
  dataset, saved = run_records.open_training_data(config)
  assert dataset.source == 'procedural'
  assert saved.dataset_source == 'procedural'
  assert config.dataset_source == 'auto'  # The caller's config is untouched.


def test_dataset_json_describes_the_source(tmp_path):
  dataset, _ = run_records.open_training_data(make_config(str(tmp_path)))
  run_records.write_dataset_json(str(tmp_path), dataset)
  described = json.loads((tmp_path / 'dataset.json').read_text())
  assert described == {
      'name': 'dsprites/tiny', 'source': 'procedural',
      'tfds_name': 'dsprites_procedural/tiny/2.0.0',
      'data_dir': str(tmp_path / 'dsprites_procedural' / 'tiny' / '2.0.0'),
      'num_records': 2_869, 'observation_shape': [64, 64, 1],
      'has_ground_truth': True}


def test_channel_mismatch_names_the_field(tmp_path):
  config = make_config(str(tmp_path), 'color_dsprites/tiny', num_channels=1)
  # Refused by validation, before the data set is opened or prepared.
  with pytest.raises(ValueError, match=r'config.num_channels must be 3 for '
                     r"data set 'color_dsprites/tiny'.*:dataset=color_dsprites/"
                     r'tiny, which sets it, got 1'):
    experiment_config.resolve(config)


def test_resuming_on_another_source_is_refused(tmp_path):
  config = make_config(str(tmp_path), dataset_source='procedural')
  with pytest.raises(ValueError, match='trained on real dsprites/tiny data, '
                     'but here the data set resolves to procedural'):
    run_records.check_same_data_source({'dataset_source': 'real'}, config,
                                  str(tmp_path))
  # Same source, or a checkpoint from before sources were recorded: fine.
  run_records.check_same_data_source({'dataset_source': 'procedural'}, config, '')
  run_records.check_same_data_source({}, config, '')


@pytest.mark.parametrize('asked, stored, expected', [
    ('auto', 'procedural', 'procedural'),  # Left to us: as trained.
    ('auto', 'real', 'real'),
    ('real', 'real', 'real'),
    ('procedural', 'real', 'procedural'),  # Set by the user: kept (warned).
    ('auto', None, 'auto'),  # Nothing stored (older checkpoints).
])
def test_evaluation_reads_the_source_as_trained_unless_told(asked, stored,
                                                            expected):
  config = make_config(None, dataset_source=asked)
  resolved = run_records.data_source_as_trained(
      config, {} if stored is None else {'dataset_source': stored})
  assert resolved.dataset_source == expected
  assert config.dataset_source == asked  # The caller's config is untouched.
