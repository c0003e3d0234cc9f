"""The β-sweep study's report (bvae_jax/reproductions/beta_sweep_study.py)."""

import json
import os

import numpy as np
import pytest

from bvae_jax import config_defaults
from bvae_jax.core import metric_logging
from bvae_jax.metrics import modularity_explicitness
from bvae_jax.reproductions import beta_sweep_study
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report
import tiny_configs

MIG = 'mig.discrete_mig'
Z_DIFF = 'beta_vae.eval_accuracy'


def _row(beta, seed, mig, status='ok', **columns):
  return {'member': f'beta={beta:g},seed={seed}', 'seed': seed, 'beta': beta,
          'status': status, MIG: mig, **columns}


SYNTHETIC_ROWS = [
    _row(1.0, 0, 0.2, **{Z_DIFF: 0.5}),
    _row(1.0, 1, 0.4, **{Z_DIFF: 0.7}),
    _row(1.0, 2, 0.9, status='failed at step 3', **{Z_DIFF: 0.1}),
    _row(10.0, 0, 0.6),  # One seed, and no Z-diff.
]


def test_table_is_mean_and_sample_std_of_the_healthy_seeds():
  summary = beta_sweep_study.summarise_by_beta(SYNTHETIC_ROWS)
  assert list(summary) == [1.0, 10.0]
  assert summary[1.0]['seeds'] == [0, 1]  # The failed seed 2 is left out.
  assert summary[1.0][MIG]['mean'] == pytest.approx(0.3)
  # Sample std of (0.2, 0.4): sqrt(2 · 0.1² / 1).
  assert summary[1.0][MIG]['std'] == pytest.approx(np.sqrt(0.02))
  assert summary[10.0][MIG] == {'mean': 0.6, 'std': None, 'per_seed': [0.6]}
  assert summary[10.0][Z_DIFF]['mean'] is None
  table = beta_sweep_study.markdown_table(summary)
  # Ours, then the study's Table 1 value, per metric.
  assert ('| 1 | 2 | 0.3000 ± 0.1414 | 0.4547 | 0.6000 ± 0.1414 | 0.3570 |'
          in table)
  assert '| 10 | 1 | 0.6000 | 0.5224 | — | 0.3523 |' in table
  assert beta_sweep_study.split_failed(SYNTHETIC_ROWS)[1] == [
      'beta=1,seed=2 (failed at step 3)']


def test_loss_curves_are_drawn_against_epochs():
  assert beta_sweep_study.steps_to_epochs(1563, 32, 5000) == pytest.approx(
      10.0032)
  steps = np.array([100, 200, 300])
  curve = {'steps': steps, 'mean': np.ones(3), 'min': np.zeros(3),
           'max': 2 * np.ones(3)}
  figure = beta_sweep_study.loss_curves_figure(
      {1.0: {term: curve for term, _ in beta_sweep_study.LOSS_TERMS}},
      batch_size=8, examples_per_epoch=400)
  for axis in figure.axes[:3]:
    np.testing.assert_allclose(axis.lines[0].get_xdata(), [2.0, 4.0, 6.0])
    assert axis.get_xlabel() == 'epoch'


def test_the_beta_1_mean_is_the_red_dashed_baseline():
  summary = beta_sweep_study.summarise_by_beta(SYNTHETIC_ROWS)
  figure = beta_sweep_study.metrics_vs_beta_figure(summary)
  mig_axis, z_diff_axis = figure.axes[:2]
  baselines = [line for line in mig_axis.lines
               if line.get_color() == 'red' and line.get_linestyle() == '--']
  assert len(baselines) == 1
  np.testing.assert_allclose(baselines[0].get_ydata(), [0.3, 0.3])
  assert mig_axis.get_xscale() == 'log'
  z_diff_baseline = [line for line in z_diff_axis.lines
                     if line.get_color() == 'red']
  np.testing.assert_allclose(z_diff_baseline[0].get_ydata(), [0.6, 0.6])


def _tiny_beta_sweep(data_dir):
  config = tiny_configs.tiny_config(data_dir, objective='beta_vae',
                                    num_train_steps=4,
                                    checkpoint_every_steps=4)
  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1), grid={'beta': (1.0, 10.0)})
  config.eval.metrics = ('mig', 'modularity_explicitness', 'beta_vae')
  config.eval.num_train = 100
  config.eval.num_test = 50
  config.eval.batch_size = 4
  return config


@pytest.mark.slow
def test_the_command_reads_the_sweep_and_writes_the_study(tmp_path):
  config = _tiny_beta_sweep(str(tmp_path / 'tfds'))
  workdir = str(tmp_path / 'sweep')
  # No sweep yet: it is trained first (no matrices, to keep this short).
  beta_sweep_study.run(config, workdir, matrix_betas=(), udr_num_points=0)
  rows = sweep_report.read_member_rows(workdir)
  assert all(row['status'] == 'ok' for row in rows)
  by_name = {row['member']: dict(row) for row in rows}
  # Pretend beta=10,seed=0 failed and beta=10,seed=1 was not scored with
  # the β-VAE score (as configs/sweep_beta.py's evaluation is not).
  edited = [dict(row) for row in rows]
  for row in edited:
    if row['member'] == 'beta=10,seed=0':
      row['status'] = 'failed at step 3'
    if row['member'] == 'beta=10,seed=1':
      del row[Z_DIFF]
  with open(sweep_report.results_path(workdir), 'w') as f:
    json.dump({'members': edited}, f)

  result = beta_sweep_study.run(config, workdir, traversal_beta=10.0,
                                udr_num_points=64)

  assert result['left_out_failed'] == ['beta=10,seed=0 (failed at step 3)']
  assert result['betas'][10.0]['seeds'] == [1]
  # UDR needs two healthy seeds of a β: only β = 1's members are scored.
  assert sorted(result['udr']['members']) == ['beta=1,seed=0', 'beta=1,seed=1']
  # Computed here with the evaluation's points: the evaluation's score.
  assert result['computed_here']['beta=10,seed=1'][Z_DIFF] == by_name[
      'beta=10,seed=1'][Z_DIFF]
  assert result['betas'][10.0][Z_DIFF]['mean'] == by_name[
      'beta=10,seed=1'][Z_DIFF]
  # The matrices are of the first healthy seed, and the MI matrix is the
  # one behind the evaluation's modularity.
  assert sorted(result['matrices']) == ['beta=1,seed=0', 'beta=10,seed=1']
  for name, matrices in result['matrices'].items():
    assert modularity_explicitness.modularity(
        matrices['mutual_information']) == pytest.approx(
            by_name[name]['modularity_explicitness.modularity_score'],
            abs=1e-12)
    assert matrices['classifier_weights'].shape == (
        config.latent_dim, len(matrices['factor_names']))
  # Loss curves: the failed member's are left out; x is step · 8 / 2,869.
  assert result['examples_per_epoch'] == 2869
  assert result['epochs'] == pytest.approx(4 * 8 / 2869)
  curves = beta_sweep_study.loss_curves(workdir, edited)
  logged = metric_logging.read_scalars(
      os.path.join(workdir, sweep.MEMBERS_DIR, 'beta=10,seed=1'))['kl_total']
  np.testing.assert_allclose(curves[10.0]['kl_total']['mean'],
                             [logged[s] for s in sorted(logged)])
  study_dir = os.path.join(workdir, beta_sweep_study.STUDY_DIR)
  assert sorted(os.listdir(study_dir)) == sorted([
      'loss_curves.png', 'metrics_vs_beta.png', 'study.json',
      'study_table.md', 'mutual_information_beta=1.png',
      'mutual_information_beta=10.png', 'zdiff_classifier_beta=1.png',
      'zdiff_classifier_beta=10.png', 'traversal_beta=10_seed=1.png'])
  for name in os.listdir(study_dir):
    assert os.path.getsize(os.path.join(study_dir, name)) > 0
  with open(os.path.join(study_dir, 'study.json')) as f:
    written = json.load(f)
  # Every trained β carries the study's own numbers for it: Mir (2024),
  # Table 1 (MIG, Z-diff, modularity), transcribed here apart from the
  # module's STUDY_TABLE so that a slip in either shows.
  table_1 = {'1': (0.4547, 0.3570, 0.7087), '10': (0.5224, 0.3523, 0.6642)}
  for beta, (mig, z_diff, modularity) in table_1.items():
    assert written['betas'][beta]['study'] == {
        MIG: mig, Z_DIFF: z_diff,
        'modularity_explicitness.modularity_score': modularity}, beta
  assert written['betas']['1']['seeds'] == [0, 1]
  with open(os.path.join(study_dir, 'study_table.md')) as f:
    assert 'Left out (failed in training): beta=10,seed=0' in f.read()


def test_a_sweep_without_beta_is_refused(tmp_path):
  config = _tiny_beta_sweep(str(tmp_path / 'tfds'))
  config.sweep.grid = {'learning_rate': (1e-3,)}
  with pytest.raises(ValueError, match='grid.beta'):
    beta_sweep_study.run(config, str(tmp_path / 'sweep'))
