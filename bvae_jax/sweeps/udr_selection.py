r"""UDR model selection over a trained sweep: each member scored by its seeds.

Duan et al. (2020) select disentangled models without labels: a member's UDR
is how well its latents match, one to one, those of the other seeds of its
hyperparameter setting (bvae_jax/metrics/udr.py has the definition). A
vmapped sweep trains those seeds together, so they are all in one checkpoint:

  python -m bvae_jax.main --config=configs/sweep_beta.py --workdir=DIR --mode=udr

restores every member of the sweep in DIR, encodes the same observations with
all of them, scores each setting's seeds against each other, and writes to DIR:

  udr.json             per member its UDR; per setting the pairwise scores;
                       and, when the sweep was evaluated (sweep_results.json
                       has metric columns), the Spearman rank correlation of
                       UDR with each metric across the members (the paper's
                       Fig. 2 question: does UDR rank models as MIG or the
                       FactorVAE score would?)
  udr_vs_metrics.png   UDR against each supervised metric, one point a member

Members whose training failed (status in sweep_results.json) are left out.
"""

import json
import os
from typing import Any, Mapping, Sequence

from absl import logging
import ml_collections
import numpy as np
from scipy import stats

from bvae_jax.core import step as step_lib
from bvae_jax.datasets import registry
from bvae_jax.figures import drawing
from bvae_jax.metrics import udr
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report

# Sample sizes. disentanglement_lib's udr_sklearn has no defaults (its gin
# configs set them); these are ours, stated in udr.json.
DEFAULT_NUM_POINTS = 10_000
DEFAULT_BATCH_SIZE = 500


def setting_name(member: sweep.Member) -> str:
  """The member's hyperparameters without its seed, e.g. 'beta=4'."""
  return ','.join(f'{field}={value:g}' for field, value in
                  member.values.items()) or 'all'


def members_by_setting(members: Sequence[sweep.Member]
                       ) -> dict[str, list[sweep.Member]]:
  """Members grouped by hyperparameter setting, in sweep order."""
  groups = {}
  for member in members:
    groups.setdefault(setting_name(member), []).append(member)
  return groups


def gaussian_encoder(encode, params, batch_size: int):
  """observations (n ≤ batch_size, ...) -> (mean, log_var), numpy.

  Args:
    encode: step.jitted_encode(model).
    params: one member's parameters.
    batch_size: the largest call; shorter ones are padded to it.
  """
  def encoder(observations):
    observations = np.asarray(observations, np.float32)
    count = len(observations)
    # One compiled shape: pad a short batch.
    padded = np.zeros((batch_size,) + observations.shape[1:], np.float32)
    padded[:count] = observations
    mean, log_var = encode(params, padded)
    return np.asarray(mean)[:count], np.asarray(log_var)[:count]
  return encoder


def rank_correlations(udr_scores: Mapping[str, float],
                      rows: Sequence[Mapping[str, Any]]
                      ) -> dict[str, dict[str, float]]:
  """Spearman's ρ of UDR with each metric column of the sweep's rows.

  Args:
    udr_scores: {member name: UDR}.
    rows: sweep_results.json's 'members': dicts with 'member' and metric
      columns named '<metric>.<key>'.

  Returns:
    {column: {'spearman': ρ, 'p_value': p, 'num_members': n}} for each
    column with a value for ≥ 3 scored members, neither side constant.
  """
  by_member = {row['member']: row for row in rows}
  columns = sorted({key for row in rows for key in row if '.' in key})
  correlations = {}
  for column in columns:
    pairs = [(score, by_member[name][column]) for name, score in
             udr_scores.items()
             if name in by_member and by_member[name].get(column) is not None
             and np.isfinite(by_member[name][column]) and np.isfinite(score)]
    if len(pairs) < 3:
      continue
    udr_values, metric_values = np.array(pairs).T
    if np.ptp(udr_values) == 0 or np.ptp(metric_values) == 0:
      continue  # ρ is undefined when one side is constant.
    result = stats.spearmanr(udr_values, metric_values)
    correlations[column] = {'spearman': float(result.statistic),
                            'p_value': float(result.pvalue),
                            'num_members': len(pairs)}
  return correlations


def save_udr_figure(path: str, udr_scores: Mapping[str, float],
                    rows: Sequence[Mapping[str, Any]],
                    correlations: Mapping[str, Mapping[str, float]]) -> None:
  """UDR against each correlated metric, one point per member."""
  columns = list(correlations)
  if not columns:
    return
  by_member = {row['member']: row for row in rows}
  figure, axes = drawing.panel_grid(len(columns), (3.2, 3.2))
  for axis, column in zip(axes, columns):
    names = [n for n in udr_scores
             if n in by_member and by_member[n].get(column) is not None]
    axis.scatter([udr_scores[n] for n in names],
                 [by_member[n][column] for n in names], s=14)
    axis.set(xlabel='UDR', ylabel=column,
             title=f"ρ = {correlations[column]['spearman']:.2f}")
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def udr_of_sweep(config: ml_collections.ConfigDict, workdir: str, *,
                 num_points: int = DEFAULT_NUM_POINTS,
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 correlation: str = 'lasso', step: int | None = None
                 ) -> dict[str, Any]:
  """Scores every member of the sweep in `workdir` by UDR; writes the outputs.

  Args:
    config: the sweep config.
    workdir: the sweep's workdir.
    num_points: observations encoded by every member.
    batch_size: observations per encoder call.
    correlation: 'lasso' or 'spearman' (udr.udr_from_codes).
    step: checkpoint step; None: the latest.

  Returns:
    The dict written to workdir/udr.json.

  Raises:
    ValueError: no setting has two healthy seeds (UDR needs ≥ 2).
  """
  members = sweep.validate_sweep_config(config)
  batch_size = min(batch_size, num_points)  # Few points: one call.
  rows = (sweep_report.read_member_rows(workdir)
          if os.path.exists(sweep_report.results_path(workdir)) else [])
  failed = {row['member'] for row in rows if row.get('status', 'ok') != 'ok'}
  groups = {name: [m for m in group if m.name not in failed]
            for name, group in members_by_setting(members).items()}
  groups = {name: group for name, group in groups.items() if len(group) >= 2}
  if not groups:
    raise ValueError(
        'UDR compares seeds of one setting: config.sweep.seeds must list ≥ 2 '
        f'seeds that trained without failing; got {list(config.sweep.seeds)}'
        + (f' (failed: {sorted(failed)})' if failed else ''))
  ground_truth = None
  settings, scores = {}, {}
  for name, group in groups.items():
    encoders = []
    for member in group:
      solo, params, trained_step = sweep.restore_member(config, workdir,
                                                        member.name, step)
      if ground_truth is None:
        ground_truth = registry.open_dataset(
            solo.dataset, solo.dataset_source, solo.data_dir).ground_truth()
        encode = step_lib.jitted_encode(step_lib.create_model(solo))
      encoders.append(gaussian_encoder(encode, params, batch_size))
    logging.info('UDR of %s: %d seeds, %d observations each.', name,
                 len(group), num_points)
    # Every setting sees the same observations (common random numbers).
    result = udr.compute_udr(
        ground_truth, encoders,
        random_state=np.random.RandomState(config.eval.seed),
        num_points=num_points, batch_size=batch_size, correlation=correlation)
    settings[name] = {'members': [m.name for m in group],
                      'pairwise': result['pairwise'].tolist(),
                      'model_scores': result['model_scores'].tolist()}
    scores.update({m.name: float(s) for m, s in
                   zip(group, result['model_scores'])})
  correlations = rank_correlations(scores, rows)
  summary = {'step': trained_step, 'correlation': correlation,
             'num_points': num_points, 'members': scores,
             'settings': settings, 'rank_correlation': correlations,
             'left_out_failed': sorted(failed)}
  with open(os.path.join(workdir, 'udr.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  save_udr_figure(os.path.join(workdir, 'udr_vs_metrics.png'), scores, rows,
                  correlations)
  return summary
