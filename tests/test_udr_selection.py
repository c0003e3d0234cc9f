"""UDR model selection over a trained sweep (bvae_jax/sweeps/udr_selection.py)."""

import json
import os

import numpy as np
import pytest

from bvae_jax import config_defaults
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import udr_selection
import tiny_configs


def _tiny_sweep(data_dir, seeds):
  config = tiny_configs.tiny_config(data_dir, num_train_steps=4,
                                    checkpoint_every_steps=4)
  config.sweep = config_defaults.sweep_block(
      seeds=seeds, grid={'gamma': (1.0, 2.0)}, evaluate=False)
  return config


def test_members_are_grouped_by_setting_without_the_seed():
  config = _tiny_sweep('/unused', seeds=(0, 1, 2))
  groups = udr_selection.members_by_setting(sweep.sweep_members(config))
  assert list(groups) == ['gamma=1', 'gamma=2']
  assert [m.seed for m in groups['gamma=2']] == [0, 1, 2]


def test_rank_correlation_with_each_metric_column():
  scores = {'a': 0.1, 'b': 0.2, 'c': 0.3, 'd': 0.4}
  rows = [{'member': name, 'seed': 0, 'mig.discrete_mig': value,
           'sap.SAP_score': -value, 'dci.disentanglement': None}
          for name, value in zip('abcd', (1.0, 2.0, 3.0, 5.0))]
  correlations = udr_selection.rank_correlations(scores, rows)
  assert correlations['mig.discrete_mig']['spearman'] == pytest.approx(1.0)
  assert correlations['sap.SAP_score']['spearman'] == pytest.approx(-1.0)
  assert correlations['mig.discrete_mig']['num_members'] == 4
  assert 'dci.disentanglement' not in correlations  # No values.
  assert 'seed' not in correlations  # Not a metric column.


def test_rank_correlation_is_left_out_where_one_side_is_constant():
  # Models that all score UDR 0 (nothing learnt): ρ is undefined, not NaN.
  rows = [{'member': name, 'mig.discrete_mig': value, 'sap.SAP_score': 0.5}
          for name, value in zip('abc', (1.0, 2.0, 3.0))]
  assert udr_selection.rank_correlations(
      {'a': 0.0, 'b': 0.0, 'c': 0.0}, rows) == {}
  varied = udr_selection.rank_correlations({'a': 0.1, 'b': 0.3, 'c': 0.2},
                                           rows)
  assert list(varied) == ['mig.discrete_mig']  # SAP is constant.
  assert varied['mig.discrete_mig']['spearman'] == pytest.approx(0.5)


@pytest.mark.slow
def test_udr_of_a_trained_sweep(tmp_path):
  config = _tiny_sweep(str(tmp_path / 'tfds'), seeds=(0, 1))
  workdir = str(tmp_path / 'sweep')
  sweep.train_sweep(config, workdir)
  summary = udr_selection.udr_of_sweep(config, workdir, num_points=200,
                                       batch_size=100)
  names = [m.name for m in sweep.sweep_members(config)]
  assert sorted(summary['members']) == sorted(names)
  # After 4 steps no latent carries 0.01 nats: every model scores 0 (the
  # values themselves are tested in test_metric_udr.py).
  for score in summary['members'].values():
    assert 0.0 <= score <= 1.0
  pairwise = np.array(summary['settings']['gamma=1']['pairwise'])
  assert pairwise.shape == (2, 2) and np.all(np.diag(pairwise) == 0)
  # Two models: each one's UDR is its one score against the other.
  assert summary['settings']['gamma=1']['model_scores'] == pytest.approx(
      [pairwise[1, 0], pairwise[0, 1]])
  with open(os.path.join(workdir, 'udr.json')) as f:
    assert json.load(f)['members'] == summary['members']


def test_one_seed_is_refused_with_the_reason(tmp_path):
  config = _tiny_sweep(str(tmp_path / 'tfds'), seeds=(0,))
  with pytest.raises(ValueError, match='≥ 2'):
    udr_selection.udr_of_sweep(config, str(tmp_path / 'nothing'))
