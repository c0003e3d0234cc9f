"""The 50k-step study's table from results folders: means, sds, collapse, ranking."""

import json
import os

import numpy as np
import pytest

from bvae_jax.reproductions import study_50k


def write_run(root, folder, metrics_by_step, history):
  path = os.path.join(root, folder)
  os.makedirs(path)
  json.dump({'steps': max(metrics_by_step)}, open(f'{path}/run.json', 'w'))
  json.dump({str(step): {'step': step, 'metrics': metrics,
                         'informative_latents': list(range(informative))}
             for step, (metrics, informative) in metrics_by_step.items()},
            open(f'{path}/metrics.json', 'w'))
  json.dump(history, open(f'{path}/history.json', 'w'))


def history(kl_total, kl_input_dependent):
  return {'step': [10, 20], 'reconstruction': [300.0, 200.0],
          'kl_total': [kl_total, kl_total],
          'information': [kl_input_dependent, kl_input_dependent]}


@pytest.fixture
def results(tmp_path):
  mig = lambda value: {'mig': {'discrete_mig': value}}
  # capacity leads at step 10 and falls behind at step 20; seed 1 collapsed.
  write_run(tmp_path, 'capacity_s0', {10: (mig(0.3), 2), 20: (mig(0.1), 3)},
            history(20.0, 15.0))
  write_run(tmp_path, 'capacity_s1', {10: (mig(0.5), 0), 20: (mig(0.2), 1)},
            history(20.0, 0.5))
  write_run(tmp_path, 'beta_vae_s0', {10: (mig(0.2), 4), 20: (mig(0.4), 4)},
            history(8.0, 7.0))
  os.makedirs(tmp_path / 'not_a_run')
  return str(tmp_path)


def test_table_means_sds_collapse_and_ranking(results):
  summary = study_50k.write_report(results)
  assert summary['steps'] == [10, 20]
  capacity = summary['methods']['capacity']
  assert capacity['seeds'] == [0, 1]
  assert capacity['collapsed'] == [False, True]  # 0.5 of 20 nats: 2.5%.
  cell = capacity['10']['mig.discrete_mig']
  assert cell['mean'] == pytest.approx(0.4)
  assert cell['std'] == pytest.approx(np.std([0.3, 0.5], ddof=1))
  assert capacity['20']['informative_latents']['per_seed'] == [3, 1]
  # History at the evaluated step: the last log interval at or before it.
  assert capacity['10']['reconstruction']['mean'] == 300.0
  assert summary['methods']['beta_vae']['10']['mig.discrete_mig']['std'] is None
  assert summary['ranking']['mig.discrete_mig'] == {
      '10': ['capacity', 'beta_vae'], '20': ['beta_vae', 'capacity']}
  assert summary['ranking_changed']['mig.discrete_mig'] is True
  assert summary['ranking_changed']['sap.SAP_score'] is False  # Absent.
  assert sorted(os.listdir(results)) == [
      'beta_vae_s0', 'capacity_s0', 'capacity_s1', 'not_a_run', 'study.json',
      'study.md', 'study.png']
  table = open(os.path.join(results, 'study.md')).read()
  assert '| capacity | 2 (0, 1) | 1 of 2 | 0.4 ± 0.14 |' in table
  assert '| MIG | capacity > beta_vae | beta_vae > capacity | yes |' in table
  assert json.load(open(os.path.join(results, 'study.json')))[
      'ranking_changed']['mig.discrete_mig'] is True


def test_runs_without_information_are_not_counted_as_healthy(results):
  history_path = os.path.join(results, 'beta_vae_s0', 'history.json')
  history = json.load(open(history_path))
  del history['information']  # As runs logged before it existed.
  json.dump(history, open(history_path, 'w'))
  summary = study_50k.write_report(results)
  assert summary['methods']['beta_vae']['collapsed'] == [None]
  assert '| beta_vae | 1 (0) | — |' in open(os.path.join(results,
                                                          'study.md')).read()


def test_a_method_with_logged_and_unlogged_seeds_counts_them_apart(results):
  history_path = os.path.join(results, 'capacity_s0', 'history.json')
  history = json.load(open(history_path))
  del history['information']
  json.dump(history, open(history_path, 'w'))
  study_50k.write_report(results)
  table = open(os.path.join(results, 'study.md')).read()
  assert '| capacity | 2 (0, 1) | 1 of 1 (1 not logged) |' in table


def test_a_run_folder_missing_a_file_is_named(results):
  os.remove(os.path.join(results, 'capacity_s1', 'history.json'))
  with pytest.raises(FileNotFoundError, match='capacity_s1/history.json is '
                     'missing'):
    study_50k.read_runs(results)


def test_no_runs_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match='No published run'):
    study_50k.write_report(str(tmp_path))


def test_headline_names_each_methods_zoo_models_from_their_cards(tmp_path):
  # A repository's layout: zoo/<name>/card.json whose `results` points at
  # results/<run folder>, relative to the repository's root.
  results = tmp_path / 'results'
  mig = lambda value: {'mig': {'discrete_mig': value}}
  write_run(results, 'capacity_s0', {20: (mig(0.1), 3)}, history(20.0, 15.0))
  write_run(results, 'capacity_s1', {20: (mig(0.2), 1)}, history(20.0, 0.5))
  write_run(results, 'beta_vae_s0', {20: (mig(0.4), 4)}, history(8.0, 7.0))
  for name, folder in (('m_cap0', 'results/capacity_s0'),
                       ('m_cap1', 'results/capacity_s1'),
                       ('m_other', 'elsewhere/beta_vae_s0')):
    os.makedirs(tmp_path / 'zoo' / name)
    json.dump({'results': folder},
              open(tmp_path / 'zoo' / name / 'card.json', 'w'))
  summary = study_50k.write_report(str(results), str(tmp_path / 'zoo'))
  assert summary['zoo_models'] == {'capacity_s0': 'm_cap0',
                                   'capacity_s1': 'm_cap1'}
  table = open(results / 'study.md').read()
  assert table.startswith('### Headline: step 20, mean ± sd over seeds')
  # Seed 1 collapsed (0.5 of 20 nats from the input); sd of 0.1, 0.2.
  assert ('| capacity (γ = 1000, C → 25 over 40k) | 2 (1 collapsed) | '
          '0.150 ± 0.071 | — | — | — | 200.0 ± 0.0 | 20.0 ± 0.0 | '
          '`m_cap0`, `m_cap1` |') in table
  # A card pointing elsewhere is not this study's model.
  assert '| β-VAE (β = 4) | 1 | 0.400 | — | — | — | 200.0 | 8.0 | — |' in table


def test_differences_between_methods_carry_welchs_p(results):
  summary = study_50k.write_report(results)
  pairs = {(c['first'], c['second']): c for c in summary['comparisons']}
  # Methods in the summary's order: beta_vae before capacity.
  mig = pairs[('beta_vae', 'capacity')]['mig.discrete_mig']
  assert mig['difference'] == pytest.approx(0.4 - 0.15)
  # One beta_vae seed: the test is undefined, so no p.
  assert mig['p'] is None
  # Welch's t-test against its definition (scipy, equal_var=False).
  from scipy import stats
  expected = stats.ttest_ind([0.1, 0.2], [0.5, 0.45], equal_var=False).pvalue
  assert study_50k.welch_p([0.1, 0.2], [0.5, 0.45]) == pytest.approx(expected)
  # t = -5.37 with ~1.6 degrees of freedom: p between 0.05 and 0.1.
  assert 0.05 < expected < 0.1
  assert study_50k.welch_p([0.3, 0.3], [0.2, 0.2]) is None  # No spread.
  table = open(os.path.join(results, 'study.md')).read()
  assert '| beta_vae − capacity | +0.250 | — |' in table
