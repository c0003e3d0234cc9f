"""UDR model selection over a trained sweep (bvae_jax/sweeps/udr_selection.py)."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from bvae_jax import config_defaults
from bvae_jax.core import step as step_lib
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


def _reference_pairwise_udr(codes, kls, threshold=0.01):
  """disentanglement_lib's compute_udr_sklearn with correlation='spearman'
  (evaluation/udr/metrics/udr.py), written out independently: per ordered
  pair (i, j), |Spearman ρ| between the informative latents of model i
  (rows) and of model j (columns), scored by relative strength
  ½(mean over columns of max²/sum + the same over rows); a model's UDR is
  the median of its column without the diagonal. (Its standardisation and
  zeroing of uninformative latents do not change ranks, and those latents
  are then dropped.)"""
  n = len(codes)
  pairwise = np.zeros((n, n))
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      a = codes[i][:, kls[i] > threshold]
      b = codes[j][:, kls[j] > threshold]
      rho = np.array([[stats.spearmanr(a[:, p], b[:, q])[0]
                       for q in range(b.shape[1])] for p in range(a.shape[1])])
      rho = np.abs(rho)
      strength = [np.nanmean(np.nan_to_num(rho.max(axis) ** 2 / rho.sum(axis)))
                  for axis in (0, 1)]
      pairwise[i, j] = sum(strength) / 2
  scores = [np.median(np.delete(pairwise[:, i], i)) for i in range(n)]
  return pairwise, scores


@pytest.mark.slow
def test_udr_with_informative_latents_matches_the_reference(tmp_path):
  # The capacity objective pushes the KL to C = 25 nats within the 100-step
  # ramp, so after 150 steps several latents carry > 0.01 nats and the scores
  # are neither all 0 nor all 1: the value means something. (A β-VAE this
  # small and short keeps every latent under 0.01 nats.)
  config = tiny_configs.tiny_config(str(tmp_path / 'tfds'),
                                    num_train_steps=150,
                                    checkpoint_every_steps=150,
                                    log_every_steps=50)
  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1, 2), grid={'capacity_max': (25.0,)}, evaluate=False)
  workdir = str(tmp_path / 'sweep')
  sweep.train_sweep(config, workdir)
  num_points, batch_size = 300, 100
  summary = udr_selection.udr_of_sweep(
      config, workdir, num_points=num_points, batch_size=batch_size,
      correlation='spearman')

  # The same observations (drawn as the pipeline draws them, with
  # config.eval.seed), encoded by each restored member.
  members = sweep.sweep_members(config)
  random_state = np.random.RandomState(config.eval.seed)
  ground_truth = tiny_configs.open_configured(
      sweep.member_config(config, members[0])).ground_truth()
  batches = [ground_truth.sample_observations(batch_size, random_state)
             for _ in range(num_points // batch_size)]
  codes, kls = [], []
  for member in members:
    solo, params, _ = sweep.restore_member(config, workdir, member.name)
    encode = step_lib.jitted_encode(step_lib.create_model(solo))
    means, log_vars = zip(*[encode(params, np.asarray(b, np.float32))
                            for b in batches])
    mean, log_var = np.concatenate(means), np.concatenate(log_vars)
    codes.append(mean)
    kls.append(np.mean(0.5 * (mean**2 + np.exp(log_var) - log_var - 1), 0))
  assert all(np.sum(kl > 0.01) >= 2 for kl in kls), kls  # Informative.
  pairwise, scores = _reference_pairwise_udr(codes, kls)
  np.testing.assert_allclose(summary['settings']['capacity_max=25']['pairwise'],
                             pairwise, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose([summary['members'][m.name] for m in members],
                             scores, rtol=1e-5, atol=1e-6)
  assert 0.05 < min(scores) and max(scores) < 0.99, scores  # Not degenerate.
