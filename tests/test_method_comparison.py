"""The method comparison (configs/compare_methods.py, reproductions/method_comparison.py)."""

import json
import os
from unittest import mock

import pytest

import configs.compare_methods
from bvae_jax.reproductions import method_comparison


def test_every_method_config_trains_its_objective_with_the_shared_budget():
  config = configs.compare_methods.get_config('quick')
  objectives = {}
  for name in config.methods:
    method = method_comparison.method_config(config, name)
    objectives[name] = method.objective
    assert method.num_train_steps == config.num_train_steps
    assert method.learning_rate == config.learning_rate
    assert 'methods' not in method
  assert objectives == {'capacity': 'capacity', 'beta_vae': 'beta_vae',
                        'vae': 'beta_vae', 'beta_tcvae': 'beta_tcvae',
                        'factor_vae': 'factor_vae',
                        'dip_vae_i': 'dip_vae'}
  capacity = method_comparison.method_config(config, 'capacity')
  assert (capacity.gamma, capacity.capacity_max) == (1000.0, 25.0)
  assert capacity.capacity_anneal_steps == 1_000
  assert method_comparison.method_config(config, 'beta_vae').beta == 4.0
  assert method_comparison.method_config(config, 'vae').beta == 1.0


def test_an_unknown_method_is_refused_by_name():
  with pytest.raises(ValueError, match="unknown methods \\['tcvae'\\]"):
    configs.compare_methods.get_config('methods=capacity+tcvae')


def test_summary_leaves_failed_seeds_out_and_the_table_shows_mean_and_std():
  rows = [
      {'member': 'seed=0', 'seed': 0, 'status': 'ok', 'mig.discrete_mig': 0.1,
       'reconstruction': 50.0},
      {'member': 'seed=1', 'seed': 1, 'status': 'ok', 'mig.discrete_mig': 0.3,
       'reconstruction': 70.0},
      {'member': 'seed=2', 'seed': 2, 'status': 'failed at step 9',
       'mig.discrete_mig': 0.9, 'reconstruction': 1e9},
  ]
  summary = method_comparison.summarise_method(rows)
  assert summary['seeds'] == [0, 1] and summary['failed'] == ['seed=2']
  assert summary['mig.discrete_mig']['mean'] == pytest.approx(0.2)
  # Sample std (ddof = 1): sqrt(((0.1 - 0.2)² + (0.3 - 0.2)²) / 1).
  assert summary['mig.discrete_mig']['std'] == pytest.approx(0.02 ** 0.5)
  table = method_comparison.markdown_table({'capacity': summary})
  assert '| method | seeds | MIG | reconstruction NLL |' in table
  assert '| capacity | 2 | 0.2 ± 0.14 | 60 ± 14 |' in table
  one_seed = method_comparison.summarise_method(rows[:1])
  assert one_seed['mig.discrete_mig']['std'] is None
  assert '| capacity | 1 | 0.1 | 50 |' in method_comparison.markdown_table(
      {'capacity': one_seed})


@pytest.mark.slow
def test_the_command_trains_each_method_and_writes_the_comparison(tmp_path):
  config = configs.compare_methods.get_config('methods=capacity+beta_vae')
  config.dataset = 'dsprites_procedural/tiny'
  config.data_dir = str(tmp_path / 'tfds')
  config.batch_size = 8
  config.num_train_steps = 4
  config.checkpoint_every_steps = 4
  config.log_every_steps = 2
  config.figure_every_steps = 1000
  config.methods.capacity.capacity_anneal_steps = 2
  config.sweep.seeds = (0, 1)
  config.eval.metrics = ('mig',)
  config.eval.num_train = config.eval.num_test = 100
  config.udr_num_points = 64
  workdir = str(tmp_path / 'compare')
  result = method_comparison.run(config, workdir)
  assert list(result['methods']) == ['capacity', 'beta_vae']
  for summary in result['methods'].values():
    assert summary['seeds'] == [0, 1]
    assert 'mig.discrete_mig' in summary and 'reconstruction' in summary
    # UDR of each seed against the other: a score per seed, in [0, 1].
    assert len(summary['udr']['per_seed']) == 2
    assert all(0.0 <= u <= 1.0 for u in summary['udr']['per_seed'])
  assert 'kl_capacity_gap' in result['methods']['capacity']
  # Pooled over both methods: 4 members, enough for a rank correlation
  # unless 4 steps left every UDR equal (then ρ is undefined and absent).
  udr_values = [u for s in result['methods'].values()
                for u in s['udr']['per_seed']]
  if len(set(udr_values)) > 1:
    pooled = result['udr_rank_correlation']['mig.discrete_mig']
    assert pooled['num_members'] == 4 and -1.0 <= pooled['spearman'] <= 1.0
  else:
    assert 'mig.discrete_mig' not in result['udr_rank_correlation']
  with open(os.path.join(workdir, 'comparison.json')) as f:
    assert json.load(f)['methods'] == json.loads(json.dumps(result['methods']))
  with open(os.path.join(workdir, 'capacity', 'udr.json')) as f:
    capacity_udr = json.load(f)['members']
  assert (result['methods']['capacity']['udr']['per_seed']
          == [capacity_udr['seed=0'], capacity_udr['seed=1']])
  # The UDR figure is drawn when there is a correlation to show.
  assert (os.path.exists(os.path.join(workdir, 'udr_vs_metrics.png'))
          == bool(result['udr_rank_correlation']))
  for name in ('comparison.md', 'comparison.png', 'training.png',
               os.path.join('beta_vae', 'sweep_results.json')):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  table = open(os.path.join(workdir, 'comparison.md')).read()
  assert '| UDR |' in table
  # |KL − C| escaped, so every row has as many cells as the header.
  assert '| \\|KL − C\\| |' in table
  rows = [line for line in table.splitlines() if line.startswith('|')]
  assert len({line.replace('\\|', '').count('|') for line in rows}) == 1

  # The curves of training.png: logged steps 2 and 4, one row per seed, the
  # final KL equal to the one in the table.
  rows = method_comparison.sweep_report.read_member_rows(
      os.path.join(workdir, 'capacity'))
  curves = method_comparison.training_curves(
      os.path.join(workdir, 'capacity'), rows)
  steps, kl = curves['kl_total']
  assert steps.tolist() == [2, 4] and kl.shape == (2, 2)
  assert kl[:, -1].tolist() == pytest.approx(
      result['methods']['capacity']['kl_total']['per_seed'], rel=1e-5)
  assert 'kl_capacity_gap' not in method_comparison.training_curves(
      os.path.join(workdir, 'beta_vae'),
      method_comparison.sweep_report.read_member_rows(
          os.path.join(workdir, 'beta_vae')))

  # A re-run reads each method's udr.json instead of restoring its
  # checkpoints, and gives the same table; a udr.json of other settings is
  # recomputed.
  def no_udr(*args, **kwargs):
    raise AssertionError('UDR recomputed although udr.json matches')
  with mock.patch.object(method_comparison.udr_selection, 'udr_of_sweep',
                         no_udr):
    assert method_comparison.run(config, workdir) == result
  config.udr_num_points = 32
  assert method_comparison.saved_udr(
      config, 'capacity', os.path.join(workdir, 'capacity')) is None
  config.udr_num_points = 64

  # A method with one seed has no UDR; it is left out, not an error.
  config.sweep.seeds = (0,)
  assert method_comparison.udr_of_methods(config, workdir, ['capacity']) == {}


def test_pooled_members_are_named_by_method_and_keep_their_rows():
  scores, rows = method_comparison.pool_members(
      {'capacity': {'seed=0': 0.5, 'seed=1': 0.7}, 'vae': {'seed=0': 0.1}},
      {'capacity': [{'member': 'seed=0', 'mig.discrete_mig': 0.3},
                    {'member': 'seed=1', 'mig.discrete_mig': 0.4}],
       'vae': [{'member': 'seed=0', 'mig.discrete_mig': 0.05}]})
  assert scores == {'capacity/seed=0': 0.5, 'capacity/seed=1': 0.7,
                    'vae/seed=0': 0.1}
  assert [row['member'] for row in rows] == [
      'capacity/seed=0', 'capacity/seed=1', 'vae/seed=0']
  correlation = method_comparison.udr_selection.rank_correlations(scores, rows)
  assert correlation['mig.discrete_mig']['spearman'] == pytest.approx(1.0)
