"""Config files, config arguments and validation of bad values."""

import ast
import importlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from bvae_jax import config_defaults
from bvae_jax import experiment_config
from bvae_jax import main
from bvae_jax.objectives import likelihoods
from bvae_jax.sweeps import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = tuple(sorted(name for name in os.listdir(os.path.join(REPO, 'configs'))
                           if name.endswith('.py') and not name.startswith('_')))


def load_module(name):
  spec = importlib.util.spec_from_file_location(
      name[:-3], os.path.join(REPO, 'configs', name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(name, arg=None):
  return load_module(name).get_config(arg)


def runner(name):
  """The module that validates config `name`: its runner's when that has a
  validate_config of its own (a generator, a comparison of methods), else
  bvae_jax.main's (experiment_config.resolve, which validates)."""
  module = main.RUNNERS[load_config(name).runner]
  if module and hasattr(importlib.import_module(module), 'validate_config'):
    return module
  return 'bvae_jax.main'


def validate(name, config):
  """Validates as the config's runner does (experiment_config for main);
  returns the config the run uses (resolved for main)."""
  if runner(name) == 'bvae_jax.main':
    return experiment_config.resolve(config)
  importlib.import_module(runner(name)).validate_config(config)
  # The generator's config has fields of its own; the others are VAEs'.
  return experiment_config.resolve(config) if 'objective' in config else config


@pytest.mark.parametrize('name', CONFIG_FILES)
def test_every_config_names_a_known_runner(name):
  assert load_config(name).runner in main.RUNNERS


# Configs of a paper's figure on one data set (FIXED_DATASET) take no dataset=.
ANY_DATASET_CONFIGS = tuple(name for name in CONFIG_FILES if not hasattr(
    load_module(name), 'FIXED_DATASET'))


@pytest.mark.parametrize('name', CONFIG_FILES)
@pytest.mark.parametrize('arg', [None, 'quick'])
def test_configs_load_and_validate(name, arg):
  config = load_config(name, arg)
  validate(name, config)
  for field in ('num_train_steps', 'batch_size', 'seed', 'learning_rate',
                'checkpoint_every_steps', 'log_every_steps'):
    assert field in config
  if runner(name) == 'bvae_jax.main':
    assert 'latent_dim' in config


def test_configs_with_a_runner_refuse_bad_values_by_name():
  fig3 = load_config('burgess_fig3.py', 'quick')
  fig3.channel_learning_rate = 0.0
  with pytest.raises(ValueError, match='channel_learning_rate'):
    validate('burgess_fig3.py', fig3)
  compare = load_config('compare_methods.py', 'quick')
  compare.methods.beta_vae.beta = -1.0
  with pytest.raises(ValueError, match='config.methods.beta_vae: .*beta'):
    validate('compare_methods.py', compare)


def test_capacity_config_is_the_paper_setting():
  config = experiment_config.resolve(load_config('capacity.py'))
  # Burgess et al. 2018, Section 5 / appendix A.1.
  assert (config.objective, config.gamma, config.capacity_start,
          config.capacity_max, config.capacity_anneal_steps) == (
              'capacity', 1000.0, 0.0, 25.0, 100_000)
  assert (config.learning_rate, config.batch_size, config.latent_dim,
          config.likelihood) == (5e-4, 64, 10, 'bernoulli')


def test_beta_configs():
  assert load_config('beta_vae.py').beta == 4.0
  assert load_config('vae.py').beta == 1.0
  assert load_config('vae.py').objective == 'beta_vae'


def test_sweep_beta_is_the_published_grid():
  config = experiment_config.resolve(load_config('sweep_beta.py'))
  assert config.sweep.grid.beta == (0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 50.0)
  # 10 latents, batch 32, lr 1e-3, 50,000-image subset, 10 epochs.
  assert (config.objective, config.latent_dim, config.batch_size,
          config.learning_rate, config.train_subset_size,
          config.num_train_steps) == ('beta_vae', 10, 32, 1e-3, 50_000, 15_625)
  assert len(sweep.sweep_members(config)) == 21
  quick = load_config('sweep_beta.py', 'quick')
  assert len(sweep.sweep_members(quick)) == 7


def test_sweep_beta_one_beta_under_a_squared_error_decoder():
  config = experiment_config.resolve(
      load_config('sweep_beta.py', 'beta=50,likelihood=gaussian'))
  assert [m.name for m in sweep.sweep_members(config)] == [
      'beta=50,seed=0', 'beta=50,seed=1', 'beta=50,seed=2']
  assert config.likelihood == 'gaussian'
  # The per-pixel NLL is the squared error plus a constant.
  images = np.array([[[[0.0], [1.0]]]], np.float32)
  means = np.array([[[[0.3], [0.4]]]], np.float32)
  nll = likelihoods.gaussian_nll(means, images, config.gaussian_stddev)
  np.testing.assert_allclose(nll, [0.09 + 0.36 + 2 * np.log(np.sqrt(np.pi))],
                             rtol=1e-6)
  assert load_config('sweep_beta.py', 'beta=50').likelihood == 'bernoulli'


def test_sweep_capacity_grid():
  config = load_config('sweep_capacity.py')
  assert config.sweep.grid.capacity_max == (5.0, 10.0, 25.0, 50.0)
  assert (config.gamma, config.capacity_anneal_steps) == (1000.0, 100_000)
  assert [m.name for m in sweep.sweep_members(
      load_config('sweep_capacity.py', 'quick'))] == [
          'capacity_max=5,seed=0', 'capacity_max=10,seed=0',
          'capacity_max=25,seed=0', 'capacity_max=50,seed=0']


def test_new_objective_configs():
  assert load_config('beta_tcvae.py').objective == 'beta_tcvae'
  factor = load_config('factor_vae.py')
  assert (factor.objective, factor.factor_vae_gamma) == ('factor_vae', 40.0)
  dip_i, dip_ii = load_config('dip_vae.py'), load_config('dip_vae.py', 'type=ii')
  assert (dip_i.dip_type, dip_i.dip_lambda_d_factor) == ('i', 10.0)
  assert (dip_ii.dip_type, dip_ii.dip_lambda_d_factor) == ('ii', 1.0)
  with pytest.raises(ValueError, match='type'):
    load_config('dip_vae.py', 'type=iii')


@pytest.mark.parametrize('objective, field, values', [
    ('beta_vae', 'beta', (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    ('capacity', 'capacity_max', (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)),
    ('beta_tcvae', 'beta', (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
    ('dip_vae', 'dip_lambda_od', (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    ('factor_vae', 'factor_vae_gamma', (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
])
def test_sweep_study_is_disentanglement_libs_grid(objective, field, values):
  # disentanglement_lib config/unsupervised_study_v1/sweep.py and shared.gin.
  config = load_config('sweep_study.py', f'objective={objective}')
  experiment_config.resolve(config)
  assert config.objective == objective
  assert dict(config.sweep.grid) == {field: values}
  assert (config.learning_rate, config.batch_size, config.num_train_steps) == (
      1e-4, 64, 300_000)
  assert len(sweep.sweep_members(config)) == 18
  quick = load_config('sweep_study.py', f'objective={objective},quick')
  assert len(sweep.sweep_members(quick)) == 6


def test_sweep_study_dip_types_and_bad_objective():
  assert load_config('sweep_study.py',
                     'objective=dip_vae,type=ii').dip_lambda_d_factor == 1.0
  with pytest.raises(ValueError, match='objective must be one of'):
    load_config('sweep_study.py', 'objective=vae')


def test_quick_config_ramps_within_its_budget():
  config = load_config('capacity.py', 'quick')
  assert config.capacity_anneal_steps < config.num_train_steps
  assert config.num_train_steps <= 10_000


def test_config_docstrings_hold_their_command():
  for name in CONFIG_FILES:
    with open(os.path.join(REPO, 'configs', name)) as f:
      text = f.read()
    assert f'python -m bvae_jax.main --config=configs/{name}' in text


def test_parse_arg():
  parsed = config_defaults.parse_arg('quick,dataset=chairs', quick=False,
                                       dataset='dsprites')
  assert parsed.quick is True and parsed.dataset == 'chairs'
  with pytest.raises(ValueError, match="'quik'"):
    config_defaults.parse_arg('quik', quick=False)


@pytest.mark.parametrize('name, field, value, message', [
    ('capacity.py', 'gamma', -1.0, 'config.gamma must be ≥ 0'),
    ('beta_vae.py', 'beta', -0.5, 'config.beta must be ≥ 0'),
    ('capacity.py', 'capacity_max', -25.0, 'config.capacity_max must be ≥ 0'),
    ('capacity.py', 'capacity_start', -1.0, 'config.capacity_start must be ≥ 0'),
    ('capacity.py', 'capacity_anneal_steps', 0,
     'config.capacity_anneal_steps must be > 0'),
    ('capacity.py', 'capacity_anneal_steps', -5,
     'config.capacity_anneal_steps must be > 0'),
    ('capacity.py', 'objective', 'factorvae', 'config.objective must be one of'),
    ('dip_vae.py', 'dip_lambda_od', -1.0, 'config.dip_lambda_od must be ≥ 0'),
    ('dip_vae.py', 'dip_type', 'iii', 'config.dip_type must be one of'),
    ('beta_tcvae.py', 'beta', -1.0, 'config.beta must be ≥ 0'),
    ('factor_vae.py', 'factor_vae_gamma', -1.0,
     'config.factor_vae_gamma must be ≥ 0'),
    ('capacity.py', 'likelihood', 'laplace', 'config.likelihood must be one of'),
    ('capacity.py', 'num_channels', 2, 'config.num_channels must be 1 or 3'),
    ('capacity.py', 'batch_size', 0, 'config.batch_size must be > 0'),
])
def test_bad_values_name_the_field(name, field, value, message):
  config = load_config(name)
  config[field] = value
  with pytest.raises(ValueError, match=message):
    experiment_config.resolve(config)


def _run_main(*args):
  return subprocess.run([sys.executable, '-m', 'bvae_jax.main', *args],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_mistyped_override_fails_and_names_the_field(tmp_path):
  result = _run_main('--config=configs/capacity.py:quick', '--config.gama=3',
                     f'--workdir={tmp_path / "run"}')
  assert result.returncode != 0
  assert 'gama' in result.stderr
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_negative_gamma_on_the_command_line_fails_before_writing(tmp_path):
  result = _run_main('--config=configs/capacity.py:quick', '--config.gamma=-1',
                     f'--workdir={tmp_path / "run"}')
  assert result.returncode != 0
  assert 'config.gamma must be ≥ 0' in result.stderr
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_evaluate_mode_without_a_checkpoint_says_what_is_there(tmp_path):
  (tmp_path / 'notes.txt').write_text('x')
  result = _run_main('--config=configs/capacity.py:quick', '--mode=evaluate',
                     f'--workdir={tmp_path}')
  assert result.returncode != 0
  assert 'No checkpoint in' in result.stderr
  assert "holds: ['notes.txt']" in result.stderr


@pytest.mark.parametrize('dataset, channels, latents, capacity_max', [
    ('dsprites', 1, 10, 25.0),
    ('color_dsprites', 3, 10, 25.0),
    ('gaussian_blobs', 1, 10, 7.0),
    ('chairs', 3, 10, 50.0),
    ('shapes3d', 3, 10, 25.0),
    ('celeb_a', 3, 32, 50.0),  # Burgess et al. 2018, Fig. 5.
    ('color_dsprites/tiny', 3, 10, 25.0),
])
def test_dataset_argument_sets_that_data_sets_settings(dataset, channels,
                                                       latents, capacity_max):
  for name in ANY_DATASET_CONFIGS:
    config = validate(name, load_config(name, f'dataset={dataset}'))
    assert (config.dataset, config.num_channels, config.latent_dim) == (
        dataset, channels, latents)
  config = experiment_config.resolve(
      load_config('capacity.py', f'quick,dataset={dataset}'))
  assert config.capacity_max == capacity_max
  assert config.num_train_steps == 5_000


def test_unknown_dataset_argument_lists_the_known_ones():
  # The config loads (it is data); the run refuses it when it starts.
  config = load_config('capacity.py', 'dataset=mnist')
  with pytest.raises(ValueError, match=r"config.dataset must be one of "
                     r"\('dsprites', 'dsprites/tiny', 'color_dsprites'.*got "
                     "'mnist'"):
    experiment_config.resolve(config)


def test_validate_names_an_objective_field_the_config_lacks():
  # resolve fills them in; a config validated without it names the field.
  config = experiment_config.resolve(load_config('capacity.py'))
  config.objective = 'dip_vae'
  with pytest.raises(ValueError, match='config.dip_lambda_od is read by'):
    experiment_config.validate_config(config)


@pytest.mark.parametrize('field, value', [
    ('dataset', 'mnist'), ('dataset_source', 'internet')])
def test_bad_dataset_fields_are_named(field, value):
  config = load_config('capacity.py')
  config[field] = value
  with pytest.raises(ValueError, match=f'config.{field} must be one of'):
    experiment_config.resolve(config)


def test_channels_that_the_data_set_lacks_are_named():
  # Grey dSprites read as RGB (or the reverse) would fail deep in the step.
  config = load_config('capacity.py')
  config.num_channels = 3
  with pytest.raises(ValueError, match="config.num_channels must be 1 for data "
                     "set 'dsprites'"):
    experiment_config.resolve(config)
  experiment_config.resolve(load_config('capacity.py',
                                                'dataset=color_dsprites'))


def test_comma_separated_metrics_get_the_tuple_syntax_as_a_hint():
  # ml_collections parses --config.eval.metrics=mig,sap as ('mig,sap',).
  config = load_config('capacity.py')
  config.eval.metrics = ('mig,sap',)
  with pytest.raises(ValueError, match=r'--config.eval.metrics="\(\'mig\', '
                     r"'sap'\)\", got \('mig,sap',\)"):
    experiment_config.resolve(config)


def test_loading_a_config_loads_nothing_of_the_library():
  # Configs are data: a child process loads every config file (as
  # config_flags does) and reports which heavy modules it imported.
  script = (
      'import importlib.util, os, sys\n'
      f'for name in {list(CONFIG_FILES)!r}:\n'
      "  spec = importlib.util.spec_from_file_location(name[:-3], "
      "os.path.join('configs', name))\n"
      '  module = importlib.util.module_from_spec(spec)\n'
      '  spec.loader.exec_module(module)\n'
      '  module.get_config()\n'
      "print(sorted(m for m in sys.modules if m.split('.')[0] in "
      "('jax', 'flax', 'sklearn', 'tensorflow_datasets', 'orbax', 'optax') "
      "or (m.startswith('bvae_jax.') and m != 'bvae_jax.config_defaults')))\n")
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == '[]'


def test_config_files_import_ml_collections_and_config_defaults_only():
  for name in CONFIG_FILES + ('../bvae_jax/config_defaults.py',):
    with open(os.path.join(REPO, 'configs', name)) as f:
      tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        imported.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        imported.add(f'{node.module}.{node.names[0].name}'
                     if node.module == 'bvae_jax' else node.module)
    allowed = {'ml_collections', 'bvae_jax.config_defaults', 'typing'}
    assert imported <= allowed, (name, imported - allowed)


def test_resolve_fills_the_data_sets_and_objectives_defaults():
  config = load_config('dip_vae.py', 'dataset=celeb_a')
  assert (config.num_channels, config.latent_dim, config.capacity_max) == (
      None, None, None)  # The data set's, when the run starts.
  assert tuple(config.eval.metrics) == ('all',)
  resolved = experiment_config.resolve(config)
  assert (resolved.num_channels, resolved.latent_dim,
          resolved.capacity_max) == (3, 32, 50.0)
  assert resolved.eval.metrics == experiment_config.EVAL_METRICS
  assert config.num_channels is None  # The input is not changed.
  # The objective's defaults for fields the config lacks.
  config = load_config('capacity.py')
  config.objective = 'factor_vae'
  assert 'factor_vae_gamma' not in config
  assert experiment_config.resolve(config).factor_vae_gamma == 40.0
  # Resolving twice changes nothing; a value the user set is kept.
  config = load_config('capacity.py', 'dataset=chairs')
  config.latent_dim = 6
  once = experiment_config.resolve(config)
  assert once.latent_dim == 6 and once.num_channels == 3
  assert experiment_config.resolve(once).to_dict() == once.to_dict()


def test_base_config_holds_dsprites_settings():
  # The default data set's values, which set_dataset leaves to the data set.
  config = config_defaults.base_config()
  expected = experiment_config.DATASET_SETTINGS['dsprites']
  assert {field: config[field] for field in expected} == expected
  assert set(expected) == set(config_defaults.DATASET_FIELDS)
