"""The method comparison (configs/compare_methods.py, reproductions/method_comparison.py)."""

import json
import os

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
  assert summary['mig.discrete_mig']['std'] == pytest.approx(0.1)
  table = method_comparison.markdown_table({'capacity': summary})
  assert '| method | seeds | MIG | reconstruction NLL |' in table
  assert '| capacity | 2 | 0.2 ± 0.1 | 60 ± 10 |' in table


def test_the_command_trains_each_method_and_writes_the_comparison(tmp_path):
  config = configs.compare_methods.get_config('methods=capacity+beta_vae')
  config.dataset = 'dsprites_procedural/tiny'
  config.data_dir = str(tmp_path / 'tfds')
  config.batch_size = 8
  config.num_train_steps = 2
  config.checkpoint_every_steps = 2
  config.log_every_steps = 1
  config.figure_every_steps = 1000
  config.methods.capacity.capacity_anneal_steps = 2
  config.sweep.seeds = (0,)
  config.eval.metrics = ('mig',)
  config.eval.num_train = config.eval.num_test = 100
  workdir = str(tmp_path / 'compare')
  result = method_comparison.run(config, workdir)
  assert list(result['methods']) == ['capacity', 'beta_vae']
  for summary in result['methods'].values():
    assert summary['seeds'] == [0]
    assert 'mig.discrete_mig' in summary and 'reconstruction' in summary
  assert 'kl_capacity_gap' in result['methods']['capacity']
  with open(os.path.join(workdir, 'comparison.json')) as f:
    assert json.load(f)['methods'] == json.loads(json.dumps(result['methods']))
  for name in ('comparison.md', 'comparison.png',
               os.path.join('beta_vae', 'sweep_results.json')):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
