"""Vmapped sweeps: members equal their solo runs, failures stay contained."""

import csv
import logging
import os

from absl import logging as absl_logging
import jax
import numpy as np
import pytest

from bvae_jax import config_defaults
from bvae_jax.datasets import registry
from bvae_jax.evaluation import evaluate
from bvae_jax import main
from bvae_jax.sweeps import sweep
from bvae_jax.training import device_data
from bvae_jax.training import train
from training_equivalence import assert_same_params
from training_equivalence import assert_same_trajectory

STEPS = 6


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def tiny_sweep(data_dir, *, seeds, grid, **sweep_options):
  config = config_defaults.base_config()
  config.dataset = 'dsprites_procedural/tiny'
  config.data_dir = data_dir
  config.batch_size = 8
  config.num_train_steps = STEPS
  config.log_every_steps = 1  # Every step's metrics, to compare trajectories.
  config.checkpoint_every_steps = 3
  config.figure_every_steps = 1000
  config.capacity_anneal_steps = 100
  config.sweep = config_defaults.sweep_block(
      seeds=seeds, grid=grid, evaluate=False, plot_metric='kl_total',
      **sweep_options)
  return config


class _Runs:
  """Trains each sweep or solo config once per module; tests share results."""

  def __init__(self, root):
    self._root = root
    self._cache = {}

  def sweep(self, name, config):
    if name not in self._cache:
      workdir = os.path.join(self._root, name)
      self._cache[name] = (sweep.train_sweep(config, workdir), workdir)
    return self._cache[name]

  def solo(self, config):
    name = 'solo_' + '_'.join(f'{k}{config[k]}' for k in (
        'seed', 'data_seed', 'learning_rate'))
    if name not in self._cache:
      workdir = os.path.join(self._root, name)
      self._cache[name] = (train.train_and_evaluate(config, workdir), workdir)
    return self._cache[name]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  return _Runs(str(tmp_path_factory.mktemp('runs')))


def test_members_are_grid_points_times_seeds(data_dir):
  config = tiny_sweep(data_dir, seeds=(3, 4),
                      grid={'capacity_max': (1.0, 2.5), 'gamma': (10.0,)})
  members = sweep.sweep_members(config)
  assert [m.name for m in members] == [
      'capacity_max=1,gamma=10,seed=3', 'capacity_max=1,gamma=10,seed=4',
      'capacity_max=2.5,gamma=10,seed=3', 'capacity_max=2.5,gamma=10,seed=4']
  solo = sweep.member_config(config, members[2])
  assert (solo.seed, solo.capacity_max, solo.gamma, solo.data_seed) == (
      3, 2.5, 10.0, 0)
  assert 'sweep' not in solo
  config.sweep.shared_batches = False
  assert sweep.member_config(config, members[2]).data_seed is None


@pytest.mark.parametrize('grid, seeds, message', [
    ({'latent_dim': (5, 6)}, (0,), 'not a sweepable field'),
    # The capacity objective does not read β: sweeping it would train copies.
    ({'beta': (1.0, 2.0)}, (0,), "not a sweepable field of objective 'capacity'"),
    ({'gamma': (1.0, 1.0)}, (0,), 'distinct values'),
    ({'gamma': (1.0,)}, (), 'seeds is empty'),
    ({'gamma': (-1.0, 2.0)}, (0,), r'member gamma=-1,seed=0: config.gamma'),
    ({'capacity_anneal_steps': (0.0,)}, (0,), 'capacity_anneal_steps'),
])
def test_bad_sweeps_name_the_field(data_dir, grid, seeds, message):
  config = tiny_sweep(data_dir, seeds=seeds, grid=grid)
  with pytest.raises(ValueError, match=message):
    sweep.validate_sweep_config(config)


@pytest.mark.slow
@pytest.mark.parametrize('name, layout, shared', [
    ('shared3_vmap', 'vmap', True),  # One stream, (B, ...) over data.
    ('own2_vmap', 'vmap', False),  # (M, B, ...) over members and data.
    ('own2_loop', 'loop', False),  # A tuple of M (B, ...) arrays.
])
def test_sweep_with_data_on_device_trains_bit_for_bit_as_the_host_pipeline(
    data_dir, runs, tmp_path, monkeypatch, name, layout, shared):
  if shared:
    config = tiny_sweep(data_dir, seeds=(0,),
                        grid={'learning_rate': (5e-4, 1e-3, 2e-3)},
                        member_layout=layout)
  else:
    config = tiny_sweep(data_dir, seeds=(1, 2), grid={},
                        shared_batches=False, member_layout=layout)
  host_state, _ = runs.sweep(name, config)  # The same runs as the tests above.
  config.data_on_device = True
  loads = []
  load_images = device_data.load_images
  monkeypatch.setattr(device_data, 'load_images',
                      lambda *args, **kwargs: loads.append(args) or
                      load_images(*args, **kwargs))
  device_state = sweep.train_sweep(config, str(tmp_path / 'on_device'))
  assert len(loads) == 1  # One copy of the records serves every member.
  host_leaves = jax.tree.leaves(jax.device_get(host_state))
  device_leaves = jax.tree.leaves(jax.device_get(device_state))
  assert len(host_leaves) == len(device_leaves)
  for host, device in zip(host_leaves, device_leaves):
    np.testing.assert_array_equal(np.asarray(device), np.asarray(host))


def test_member_layout_is_chosen_per_backend_and_checked(data_dir):
  # On CPU 'map' once two or more member groups hold two members each.
  for members, groups, expected in [(2, 2, 'loop'), (3, 1, 'loop'),
                                    (4, 2, 'map'), (8, 2, 'map'),
                                    (8, 4, 'map'), (6, 3, 'map'),
                                    (3, 3, 'loop')]:
    assert sweep.resolve_member_layout('auto', 'cpu', members,
                                       groups) == expected, (members, groups)
  assert sweep.resolve_member_layout('auto', 'gpu', 8, 2) == 'vmap'
  assert sweep.resolve_member_layout('auto', 'tpu', 8, 2) == 'vmap'
  assert sweep.resolve_member_layout('vmap', 'cpu', 8, 2) == 'vmap'
  assert sweep.resolve_member_layout('loop', 'cpu', 8, 2) == 'loop'
  config = tiny_sweep(data_dir, seeds=(0, 1), grid={}, member_layout='scan')
  with pytest.raises(ValueError, match='config.sweep.member_layout must be '
                     "one of .*'scan'"):
    sweep.validate_sweep_config(config)
  config = tiny_sweep(data_dir, seeds=(0, 1), grid={}, member_layout='loop',
                      member_devices=2)
  with pytest.raises(ValueError, match="member_layout='loop' trains each "
                     'member over all devices, so config.sweep.member_devices '
                     'must be 0 or 1, got 2'):
    sweep.validate_sweep_config(config)


@pytest.mark.parametrize('members, devices, backend, cores, expected', [
    (4, 4, 'cpu', 2, 2),  # 2 x 2: one member group per core.
    (8, 4, 'cpu', 2, 2),
    (2, 4, 'cpu', 2, 2),
    (3, 4, 'cpu', 2, 1),  # Only 1 divides 3 and 4.
    (2, 2, 'cpu', 2, 2),
    (2, 2, 'cpu', 1, 1),
    (4, 8, 'cpu', 4, 4),
    (4, 4, 'gpu', 2, 4),  # Accelerators: the most that divide both.
    (8, 8, 'tpu', 1, 8),
])
def test_automatic_member_devices(monkeypatch, members, devices, backend,
                                  cores, expected):
  monkeypatch.setattr(jax, 'local_device_count', lambda: devices)
  assert sweep.member_device_count(0, members, backend, cores) == expected
  # A requested count is kept whatever the backend, if it divides both.
  assert sweep.member_device_count(1, members, backend, cores) == 1
  with pytest.raises(ValueError, match='member_devices=5 must divide'):
    sweep.member_device_count(5, members, backend, cores)


@pytest.mark.slow
@pytest.mark.parametrize('layout', ['vmap', 'map', 'loop'])
def test_vmapped_members_match_solo_runs_under_data_parallelism(data_dir, runs,
                                                                layout):
  # 3 members on 2 devices: mesh (members 1, data 2), batched or mapped over
  # members and data-parallel at once; shared batches.
  config = tiny_sweep(data_dir, seeds=(0,),
                      grid={'learning_rate': (5e-4, 1e-3, 2e-3)},
                      member_layout=layout)
  assert sweep.setup_sweep(config).member_layout == layout
  state, workdir = runs.sweep(f'shared3_{layout}', config)
  assert sweep.setup_sweep(config).mesh.shape == {'members': 1, 'data': 2}
  for member in sweep.sweep_members(config):
    solo_config = sweep.member_config(config, member)
    solo_state, solo_dir = runs.solo(solo_config)
    assert_same_trajectory(os.path.join(workdir, 'members', member.name),
                           solo_dir, STEPS)
    assert_same_params(sweep.member_params(state, member.index),
                       solo_state.params,
                       learning_rate=solo_config.learning_rate, steps=STEPS)


@pytest.mark.slow
@pytest.mark.parametrize('layout', ['vmap', 'map', 'loop'])
def test_members_with_own_batches_match_solo_runs(data_dir, runs, layout):
  # 2 members on 2 devices: mesh (members 2, data 1); each member reads the
  # stream of its own seed, like its solo run with data_seed unset.
  config = tiny_sweep(data_dir, seeds=(1, 2), grid={},
                      shared_batches=False, member_layout=layout)
  state, workdir = runs.sweep(f'own2_{layout}', config)
  # 'loop' trains each member over both devices, as its solo run.
  assert sweep.setup_sweep(config).mesh.shape == (
      {'members': 1, 'data': 2} if layout == 'loop' else
      {'members': 2, 'data': 1})
  checked = []
  for member in sweep.sweep_members(config):
    solo_config = sweep.member_config(config, member)
    assert solo_config.data_seed is None
    solo_state, solo_dir = runs.solo(solo_config)
    assert_same_trajectory(os.path.join(workdir, 'members', member.name),
                           solo_dir, STEPS)
    assert_same_params(sweep.member_params(state, member.index),
                       solo_state.params, learning_rate=5e-4, steps=STEPS)
    checked.append(member.name)
  # Both members were compared with their solo runs.
  assert len(checked) == 2, checked


@pytest.mark.slow
@pytest.mark.parametrize('layout', ['auto', 'loop'])
def test_failing_member_is_reported_and_the_others_are_unaffected(
    data_dir, runs, caplog, layout):
  config = tiny_sweep(data_dir, seeds=(0,), grid={'learning_rate': (5e-4, 1e30)},
                      member_layout=layout)
  absl_logging.get_absl_logger().propagate = True
  with caplog.at_level(logging.WARNING):
    state, workdir = runs.sweep(f'failing_{layout}', config)
  failed, healthy = sorted(sweep.sweep_members(config),
                           key=lambda m: -m.values['learning_rate'])
  assert any(failed.name in r.getMessage() and 'step 2' in r.getMessage()
             for r in caplog.records), [r.getMessage() for r in caplog.records]
  assert not any(healthy.name in r.getMessage() for r in caplog.records)
  failed_at = jax.device_get(state.failed_at)
  assert failed_at[failed.index] == 2 and failed_at[healthy.index] == 0
  # The failed member is frozen at its last finite state.
  assert all(np.all(np.isfinite(leaf)) for leaf in
             jax.tree.leaves(sweep.member_params(state, failed.index)))
  solo_config = sweep.member_config(config, healthy)
  solo_state, solo_dir = runs.solo(solo_config)
  assert_same_trajectory(os.path.join(workdir, 'members', healthy.name),
                         solo_dir, STEPS)
  assert_same_params(sweep.member_params(state, healthy.index),
                     solo_state.params, learning_rate=5e-4, steps=STEPS)
  # The report names the failure and keeps it out of the statistics.
  with open(os.path.join(workdir, 'sweep_results.csv')) as f:
    rows = {row['member']: row for row in csv.DictReader(f)}
  assert rows[failed.name]['status'] == 'failed at step 2'
  assert np.isfinite(float(rows[failed.name]['loss']))  # Its step-1 values.
  assert rows[healthy.name]['status'] == 'ok'
  markdown = open(os.path.join(workdir, 'sweep_results.md')).read()
  assert f'{failed.name} (failed at step 2)' in markdown
  assert '| 1e+30 | 1 | 1 | — |' in markdown


def test_every_member_failing_raises(data_dir, tmp_path):
  config = tiny_sweep(data_dir, seeds=(0, 1), grid={'learning_rate': (1e30,)})
  with pytest.raises(FloatingPointError, match='Every sweep member'):
    sweep.train_sweep(config, str(tmp_path))
  assert os.listdir(tmp_path / 'checkpoints') == []  # Nothing non-finite saved.


def test_report_table_and_plot(data_dir, runs):
  config = tiny_sweep(data_dir, seeds=(0,),
                      grid={'learning_rate': (5e-4, 1e-3, 2e-3)})
  _, workdir = runs.sweep('shared3', config)
  with open(os.path.join(workdir, 'sweep_results.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['member'] for r in rows] == [
      m.name for m in sweep.sweep_members(config)]
  assert {'loss', 'reconstruction', 'kl_total', 'kl_z0', 'kl_z9'} <= set(rows[0])
  markdown = open(os.path.join(workdir, 'sweep_results.md')).read()
  assert '## Mean ± std over seeds' in markdown
  assert os.path.getsize(os.path.join(workdir, 'sweep_kl_total.png')) > 1000
  for member in sweep.sweep_members(config):
    member_dir = os.path.join(workdir, 'members', member.name)
    assert sorted(os.listdir(os.path.join(member_dir, 'figures'))) == [
        'kl_per_latent.png', f'reconstructions_{STEPS:08d}.png',
        f'traversal_{STEPS:08d}.gif', f'traversal_{STEPS:08d}.png']


@pytest.mark.slow
def test_restore_member_alone_and_evaluate_it(data_dir, runs):
  config = tiny_sweep(data_dir, seeds=(0,),
                      grid={'learning_rate': (5e-4, 1e-3, 2e-3)})
  state, workdir = runs.sweep('shared3', config)
  member = sweep.sweep_members(config)[1]
  solo, params, step = sweep.restore_member(config, workdir, member.name)
  assert step == STEPS and solo.learning_rate == 1e-3
  for restored, trained in zip(jax.tree.leaves(params), jax.tree.leaves(
      sweep.member_params(state, member.index))):
    np.testing.assert_array_equal(restored, trained)
  _, by_index, _ = sweep.restore_member(config, workdir, 1, step=3)
  assert not np.array_equal(jax.tree.leaves(by_index)[0],
                            jax.tree.leaves(params)[0])
  with pytest.raises(KeyError, match='learning_rate=0.0005,seed=0'):
    sweep.restore_member(config, workdir, 'beta=4,seed=0')
  solo.eval.metrics = ('mig',)
  solo.eval.num_train = solo.eval.num_test = 200
  member_dir = os.path.join(workdir, 'members', member.name)
  result = evaluate.evaluate(solo, member_dir, step, params=params)
  assert set(result['metrics']) == {'mig'}
  assert os.path.exists(os.path.join(member_dir, 'eval',
                                     f'metrics_{STEPS}.json'))


@pytest.mark.slow
def test_evaluate_mode_opens_the_data_once_for_all_members(data_dir, runs,
                                                          monkeypatch):
  # `--mode=evaluate` on a sweep workdir: every member, one open data set.
  config = tiny_sweep(data_dir, seeds=(0,),
                      grid={'learning_rate': (5e-4, 1e-3, 2e-3)})
  _, workdir = runs.sweep('shared3', config)
  config.eval.metrics = ('mig',)
  config.eval.num_train = config.eval.num_test = 200
  opened = []
  open_dataset = registry.open_dataset
  monkeypatch.setattr(registry, 'open_dataset',
                      lambda *args: opened.append(args) or open_dataset(*args))
  main._evaluate_sweep(config, workdir, None, None)
  assert len(opened) == 1
  for member in sweep.sweep_members(config):
    assert os.path.exists(os.path.join(workdir, 'members', member.name, 'eval',
                                       f'metrics_{STEPS}.json'))


@pytest.mark.slow
@pytest.mark.parametrize('layout, data_on_device', [
    ('auto', False), ('loop', False),
    ('loop', True)])  # Resumed batches gathered on the devices from step 3.
def test_resumed_sweep_is_bit_identical(data_dir, runs, tmp_path, layout,
                                        data_on_device):
  config = tiny_sweep(data_dir, seeds=(0,),
                      grid={'learning_rate': (5e-4, 1e-3, 2e-3)},
                      member_layout=layout)
  # 'auto' shares the cached run of the tests above.
  uninterrupted, _ = runs.sweep(
      'shared3' if layout == 'auto' else f'shared3_{layout}', config)
  config.data_on_device = data_on_device
  config.num_train_steps = 3
  sweep.train_sweep(config, str(tmp_path))
  config.num_train_steps = STEPS
  resumed = sweep.train_sweep(config, str(tmp_path))
  for a, b in zip(jax.tree.leaves(jax.device_get(resumed)),
                  jax.tree.leaves(jax.device_get(uninterrupted))):
    np.testing.assert_array_equal(a, b)
