"""Seed shards trained apart merge into the sweep one process would train."""

import csv
import json
import os
import shutil

import jax
import numpy as np
import pytest

from bvae_jax import config_defaults
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_merge
from bvae_jax.sweeps import sweep_report
from test_sweep import STEPS
from test_sweep import tiny_sweep
from training_equivalence import assert_same_trajectory

# The use it is for (configs/sweep_beta.py): β·KL is smooth, where capacity's
# γ·|KL − C| has a kink that flips the gradient when summation order moves
# KL across C, which would hide a real difference in the noise.
GRID = {'beta': (1.0, 4.0)}


def beta_sweep(data_dir, seeds):
  config = tiny_sweep(data_dir, seeds=seeds, grid={})
  config_defaults.set_objective(config, 'beta_vae')
  config.sweep.grid = GRID
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The whole sweep (seeds 0, 1) and its two shards, each trained once."""
  root = tmp_path_factory.mktemp('merge')
  data_dir = str(root / 'tfds')
  runs = {}
  for name, seeds in (('whole', (0, 1)), ('seed0', (0,)), ('seed1', (1,))):
    config = beta_sweep(data_dir, seeds)
    workdir = str(root / name)
    runs[name] = (sweep.train_sweep(config, workdir), workdir)
  return root, data_dir, runs


def test_layout_and_device_fields_may_differ_or_predate_the_part(tmp_path):
  config = beta_sweep(str(tmp_path), seeds=(0, 1))
  stored = config.to_dict()
  stored['sweep'] = dict(stored['sweep'], member_devices=2, seeds=(1,))
  del stored['sweep']['member_layout']  # Trained before the field existed.
  assert sweep_merge.config_differences(config, stored) == []
  stored['sweep']['member_layout'] = 'vmap'
  assert sweep_merge.config_differences(config, stored) == []
  stored['batch_size'] = config.batch_size * 2
  assert sweep_merge.config_differences(config, stored) == [
      f'batch_size: part {config.batch_size * 2} vs config {config.batch_size}']


@pytest.mark.slow
def test_merged_shards_are_the_whole_sweep(trained):
  root, data_dir, runs = trained
  config = beta_sweep(data_dir, (0, 1))
  merged = str(root / 'merged')
  rows = sweep_merge.merge_sweeps(config, merged,
                                  [runs['seed1'][1], runs['seed0'][1]])
  whole_state, whole_dir = runs['whole']
  members = sweep.sweep_members(config)
  assert [row['member'] for row in rows] == [m.name for m in members] == [
      row['member'] for row in sweep_report.read_member_rows(whole_dir)]
  assert sweep_report.read_member_rows(merged) == rows
  for member in members:
    shard_state, shard_dir = runs[f'seed{member.seed}']
    shard_index = next(m.index for m in sweep.sweep_members(
        beta_sweep(data_dir, (member.seed,)))
                       if m.name == member.name)
    _, params, step = sweep.restore_member(config, merged, member.name)
    assert step == STEPS
    # The merge moves parameters, bit for bit ...
    for restored, shard in zip(
        jax.tree.leaves(params),
        jax.tree.leaves(sweep.member_params(shard_state, shard_index))):
      np.testing.assert_array_equal(restored, shard)
    # ... and a shard's member is the whole sweep's member of that name.
    assert_same_trajectory(sweep.member_workdir(merged, member.name),
                           sweep.member_workdir(whole_dir, member.name), STEPS)
  with open(os.path.join(merged, sweep_merge.MERGED_FROM_JSON)) as f:
    record = json.load(f)
  assert [p['seeds'] for p in record['parts']] == [[1], [0]]
  assert record['step'] == STEPS
  # The data it trained on, as the whole sweep records it (for publishing).
  with open(os.path.join(merged, 'dataset.json')) as f, open(
      os.path.join(whole_dir, 'dataset.json')) as g:
    assert json.load(f) == json.load(g)


def _expect_refusal(config, workdir, parts, message):
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    sweep_merge.merge_sweeps(config, workdir, parts)


def _copy_part(workdir, destination, edit_json=None):
  """A copy of a trained part; edit_json(path, value) -> value edits a file."""
  shutil.copytree(workdir, destination)
  for relative in (edit_json or {}):
    path = os.path.join(destination, relative)
    with open(path) as f:
      value = json.load(f)
    with open(path, 'w') as f:
      json.dump(edit_json[relative](value), f)
  return str(destination)


@pytest.mark.slow
def test_parts_that_do_not_make_the_sweep_are_refused(trained, tmp_path):
  root, data_dir, runs = trained
  seed0, seed1 = runs['seed0'][1], runs['seed1'][1]
  config = beta_sweep(data_dir, (0, 1))
  out = str(tmp_path / 'out')
  _expect_refusal(config, out, [seed0, seed0], 'Seed 0 was trained by both')
  _expect_refusal(beta_sweep(data_dir, (0, 1, 2)), out,
                  [seed0, seed1], r'no part has seeds \[2\]')
  _expect_refusal(beta_sweep(data_dir, (0,)), out,
                  [seed0, seed1], r'seeds \[1\] are not in the config')
  other = beta_sweep(data_dir, (0, 1))
  other.learning_rate = 1e-3
  _expect_refusal(other, out, [seed0, seed1],
                  r'learning_rate: part 0.0005 vs config 0.001')
  _expect_refusal(config, out, [seed0], 'at least two workdirs')
  _expect_refusal(config, out, [seed0, str(tmp_path / 'typo')],
                  'typo does not exist')
  # A shard on the other data source ('auto' resolves per machine).
  real = _copy_part(seed1, tmp_path / 'real', {
      f'checkpoints/{STEPS}/config/metadata':
          lambda c: {**c, 'dataset_source': 'real'}})
  _expect_refusal(config, out, [seed0, real],
                  "dataset_source: part 'real' vs config 'procedural'")
  # Stopped early: its last checkpoint is short of num_train_steps.
  short = _copy_part(seed1, tmp_path / 'short')
  shutil.rmtree(os.path.join(short, 'checkpoints', str(STEPS)))
  _expect_refusal(config, out, [seed0, short],
                  f'has not finished: .* step 3 of {STEPS}')
  assert not os.path.exists(out)
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'kept.txt').write_text('mine')
  with pytest.raises(ValueError, match='is not empty'):
    sweep_merge.merge_sweeps(config, out, [seed0, seed1])
  assert os.listdir(out) == ['kept.txt']
  assert (tmp_path / 'out' / 'kept.txt').read_text() == 'mine'


@pytest.mark.slow
def test_a_nan_in_a_part_stays_a_nan(trained, tmp_path):
  # sweep_results.json stores nan as null; merged, it must be nan again
  # (the plot of a None raised TypeError).
  _, data_dir, runs = trained
  config = beta_sweep(data_dir, (0, 1))

  def blank_first_kl(results):
    results['members'][0]['kl_total'] = None  # config.sweep.plot_metric
    return results

  seed1 = _copy_part(runs['seed1'][1], tmp_path / 'seed1',
                     {sweep_report.RESULTS_JSON: blank_first_kl})
  out = str(tmp_path / 'out')
  rows = sweep_merge.merge_sweeps(config, out, [runs['seed0'][1], seed1])
  assert np.isnan(rows[1]['kl_total'])  # beta=1,seed=1: second of four.
  assert np.isfinite(rows[0]['kl_total'])
  with open(os.path.join(out, 'sweep_results.csv')) as f:
    assert list(csv.DictReader(f))[1]['kl_total'] == 'nan'
  assert os.path.exists(os.path.join(out, 'sweep_kl_total.png'))


@pytest.mark.slow
def test_a_merge_that_fails_midway_leaves_the_directory_as_it_was(
    trained, tmp_path, monkeypatch):
  _, data_dir, runs = trained
  config = beta_sweep(data_dir, (0, 1))

  def disk_full(*args, **kwargs):
    raise OSError('No space left on device')

  monkeypatch.setattr(sweep_report, 'write_rows', disk_full)
  out = tmp_path / 'out'
  out.mkdir()
  with pytest.raises(OSError, match='No space left'):
    sweep_merge.merge_sweeps(config, str(out),
                             [runs['seed0'][1], runs['seed1'][1]])
  assert sorted(os.listdir(tmp_path)) == ['out']  # No staging left behind.
  assert not os.listdir(out)
