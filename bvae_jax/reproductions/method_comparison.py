r"""Controlled capacity against β-VAE, β-TCVAE, FactorVAE and DIP-VAE-I.

configs/compare_methods.py names the methods, their one setting each, and the
shared budget. This module trains each method as a sweep over the config's
seeds in DIR/<method> (resuming what is there; a method whose sweep finished
is only read), evaluates every member with the metric suite, and writes:

  comparison.json   per method: each seed's scores, and mean ± std over the
                    healthy seeds of every metric, the final reconstruction
                    NLL and KL (and |KL − C| for capacity), each seed's UDR;
                    and UDR's Spearman ρ with every metric over all members
  comparison.md     the headline table, methods × metrics, mean ± std
  comparison.png    each headline metric by method, one dot per seed
  training.png      reconstruction NLL, KL and |KL − C| over training, per
                    method: the mean over seeds and each seed's curve
  udr_vs_metrics.png  UDR against each metric, one point per member

UDR (Duan et al. 2020; bvae_jax/sweeps/udr_selection.py) scores each member against
the other seeds of its method, without labels (`config.udr_num_points`
observations; 0 skips it). Pooling the members of all methods gives the rank
correlation the UDR paper asks about over models of different objectives.

  python -m bvae_jax.main --config=configs/compare_methods.py:quick --workdir=DIR
"""

import json
import os
from typing import Any, Sequence

from absl import logging
import ml_collections
import numpy as np

from bvae_jax import config_defaults
from bvae_jax.core import metric_logging
from bvae_jax import experiment_config
from bvae_jax.figures import drawing
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report
from bvae_jax.sweeps import udr_selection

# Columns of the headline table (sweep_results.json's names), in order.
HEADLINE = (
    ('mig.discrete_mig', 'MIG'),
    ('factor_vae.eval_accuracy', 'FactorVAE score'),
    ('beta_vae.eval_accuracy', 'β-VAE score'),
    ('dci.disentanglement', 'DCI disentanglement'),
    ('sap.SAP_score', 'SAP'),
    ('modularity_explicitness.modularity_score', 'modularity'),
    ('reconstruction', 'reconstruction NLL'),
    ('kl_total', 'KL'),
    ('kl_capacity_gap', '|KL − C|'),
    ('udr', 'UDR'),
)

# Fields of the comparison config that are not a method's training fields.
COMPARISON_FIELDS = ('methods', 'udr_num_points')

# The per-step scalars of training.png: (TensorBoard tag, axis label).
TRAINING_CURVES = (
    ('reconstruction', 'reconstruction NLL (nats)'),
    ('kl_total', 'KL (nats)'),
    ('kl_capacity_gap', '|KL − C| (nats)'),
)


def method_config(config: ml_collections.ConfigDict,
                  name: str) -> ml_collections.ConfigDict:
  """The sweep config (seeds only) that trains method `name` of config.methods.

  Raises:
    KeyError: for a name not in config.methods.
  """
  if name not in config.methods:
    raise KeyError(f'config.methods has no {name!r}; it has '
                   f'{list(config.methods)}')
  fields = config.methods[name].to_dict()
  method = ml_collections.ConfigDict(config.to_dict())
  for field in COMPARISON_FIELDS:
    if field in method:
      del method[field]
  config_defaults.set_objective(method, fields.pop('objective'))
  method.update(fields)
  return method


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Validates every method's training config (names the method on error)."""
  if not config.methods:
    raise ValueError('config.methods is empty')
  for name in config.methods:
    try:
      experiment_config.resolve(method_config(config, name))
    except ValueError as error:
      raise ValueError(f'config.methods.{name}: {error}') from error


def summarise_method(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Mean, sample std and per-seed values of each headline column, healthy
  seeds."""
  healthy = [row for row in rows if row.get('status', 'ok') == 'ok']
  summary = {'seeds': [row['seed'] for row in healthy],
             'failed': [row['member'] for row in rows if row not in healthy]}
  for column, _ in HEADLINE:
    entry = sweep_report.mean_std([row.get(column) for row in healthy])
    if entry['per_seed']:
      summary[column] = entry
  return summary


def markdown_table(summaries: dict[str, dict[str, Any]]) -> str:
  """Methods × headline columns, 'mean ± std (n)'."""
  columns = [(c, label) for c, label in HEADLINE
             if any(c in s for s in summaries.values())]
  # A '|' inside a label ('|KL − C|') would split its cell: escape it.
  labels = [label.replace('|', '\\|') for _, label in columns]
  lines = ['| method | seeds | ' + ' | '.join(labels) + ' |',
           '|---|---|' + '---|' * len(columns)]
  for name, summary in summaries.items():
    cells = []
    for column, _ in columns:
      entry = summary.get(column)
      if entry is None:
        cells.append('—')
      elif entry['std'] is None:
        cells.append(f"{entry['mean']:.3g}")
      else:
        cells.append(f"{entry['mean']:.3g} ± {entry['std']:.2g}")
    lines.append(f"| {name} | {len(summary['seeds'])} | " +
                 ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def save_comparison_figure(path: str, summaries: dict[str, dict[str, Any]]
                           ) -> None:
  """One panel per headline metric present (rows of five): a dot per seed, a
  bar for the mean."""
  columns = [(c, l) for c, l in HEADLINE
             if any(c in s for s in summaries.values())]
  if not columns:
    return
  names = list(summaries)
  figure, axes = drawing.panel_grid(len(columns), (2.6, 3.2))
  for axis, (column, label) in zip(axes, columns):
    for x, name in enumerate(names):
      entry = summaries[name].get(column)
      if entry is None:
        continue
      axis.bar(x, entry['mean'], color='lightgray')
      axis.plot([x] * len(entry['per_seed']), entry['per_seed'], 'k.')
    axis.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    axis.set_title(label, fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def training_curves(method_dir: str, rows: Sequence[dict[str, Any]]
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Each TRAINING_CURVES scalar of the method's healthy members.

  Args:
    method_dir: the method's sweep workdir.
    rows: its sweep_results.json rows.

  Returns:
    {tag: (steps, values of shape seeds × steps)} on the steps every healthy
    member logged; tags no member logged are left out.
  """
  healthy = [row['member'] for row in rows if row.get('status', 'ok') == 'ok']
  logs = [metric_logging.read_scalars(sweep.member_workdir(method_dir, name))
          for name in healthy]
  curves = {}
  for tag, _ in TRAINING_CURVES:
    if not logs or any(tag not in log for log in logs):
      continue
    steps = sorted(set.intersection(*(set(log[tag]) for log in logs)))
    curves[tag] = (np.array(steps),
                   np.array([[log[tag][s] for s in steps] for log in logs]))
  return curves


def save_training_figure(path: str, curves: dict[str, dict[str, Any]]) -> None:
  """One panel per TRAINING_CURVES tag: each method's seed mean and seeds."""
  panels = [(tag, label) for tag, label in TRAINING_CURVES
            if any(tag in c for c in curves.values())]
  if not panels:
    return
  figure, axes = drawing.panel_grid(len(panels), (4.2, 3.4))
  for axis, (tag, label) in zip(axes, panels):
    for index, (name, method_curves) in enumerate(curves.items()):
      if tag not in method_curves:
        continue
      steps, values = method_curves[tag]
      colour = f'C{index}'
      axis.plot(steps, values.T, color=colour, alpha=0.25, linewidth=0.7)
      axis.plot(steps, values.mean(axis=0), color=colour, label=name)
    axis.set(xlabel='step', ylabel=label)
    if tag != 'reconstruction':
      axis.set_yscale('symlog', linthresh=1.0)  # |KL − C| spans 0.01–100.
  axes[0].legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def saved_udr(config: ml_collections.ConfigDict, name: str, method_dir: str
              ) -> dict[str, float] | None:
  """The method's udr.json scores if they are of this config's finished run.

  They are when udr.json scored the final step (config.num_train_steps) on
  config.udr_num_points observations with the default lasso matching, and
  covers exactly the config's members of method `name` that trained
  healthy (sweep_results.json). Reading
  them saves ~30 s a method on every re-run, and lets the table be rebuilt
  where the checkpoints are gone but the results were kept.

  Returns:
    {member: UDR}, or None: compute it.
  """
  path = os.path.join(method_dir, 'udr.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    summary = json.load(f)
  members = {member.name for member in
             sweep.validate_sweep_config(method_config(config, name))}
  failed = {row['member'] for row in sweep_report.read_member_rows(method_dir)
            if row.get('status', 'ok') != 'ok'}
  healthy = members - failed
  if (summary.get('step') != config.num_train_steps
      or summary.get('num_points') != config.udr_num_points
      or summary.get('correlation') != 'lasso'
      or set(summary.get('members', {})) != healthy):
    return None
  return summary['members']


def udr_of_methods(config: ml_collections.ConfigDict, workdir: str,
                   names: Sequence[str]) -> dict[str, dict[str, float]]:
  """{method: {member: UDR}}: each member against its method's other seeds.

  A method's saved udr.json is read where it matches (saved_udr). Methods
  with fewer than two healthy seeds are left out (logged): UDR compares
  seeds.
  """
  scores = {}
  for name in names:
    saved = saved_udr(config, name, os.path.join(workdir, name))
    if saved is not None:
      logging.info('UDR of method %s: read from its udr.json.', name)
      scores[name] = saved
      continue
    try:
      summary = udr_selection.udr_of_sweep(
          method_config(config, name), os.path.join(workdir, name),
          num_points=config.udr_num_points)
    except ValueError as error:
      logging.warning('No UDR for method %s: %s', name, error)
      continue
    scores[name] = summary['members']
  return scores


def pool_members(udr_scores: dict[str, dict[str, float]],
                 rows: dict[str, Sequence[dict[str, Any]]]
                 ) -> tuple[dict[str, float], list[dict[str, Any]]]:
  """The members of all methods as one sweep, named '<method>/<member>'.

  Returns:
    ({pooled name: UDR}, sweep_results rows renamed alike): the arguments of
    udr_selection.rank_correlations and save_udr_figure.
  """
  pooled_scores = {f'{name}/{member}': score
                   for name, members in udr_scores.items()
                   for member, score in members.items()}
  pooled_rows = [dict(row, member=f"{name}/{row['member']}")
                 for name, method_rows in rows.items() for row in method_rows]
  return pooled_scores, pooled_rows


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates each method (resuming), then compares them."""
  validate_config(config)
  # The capacity model first (the one compared), then the baselines by name.
  names = sorted(config.methods, key=lambda n: (n != 'capacity', n))
  rows = {}
  for name in names:
    method_dir = os.path.join(workdir, name)
    if not os.path.exists(sweep_report.results_path(method_dir)):
      sweep.train_sweep(method_config(config, name),
                        method_dir)
    rows[name] = sweep_report.read_member_rows(method_dir)
  udr_scores = (udr_of_methods(config, workdir, names)
                if config.udr_num_points else {})
  for name, members in udr_scores.items():
    for row in rows[name]:
      row['udr'] = members.get(row['member'])
  summaries = {name: summarise_method(rows[name]) for name in names}
  pooled_scores, pooled_rows = pool_members(udr_scores, rows)
  correlations = udr_selection.rank_correlations(pooled_scores, pooled_rows)
  result = {'num_train_steps': config.num_train_steps,
            'seeds': list(config.sweep.seeds),
            'settings': config.methods.to_dict(),
            'methods': summaries,
            'udr_rank_correlation': correlations}
  with open(os.path.join(workdir, 'comparison.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(workdir, 'comparison.md'), 'w') as f:
    f.write(f'# Methods compared: {config.num_train_steps} steps, seeds '
            f'{list(config.sweep.seeds)}\n\n' + markdown_table(summaries))
  save_comparison_figure(os.path.join(workdir, 'comparison.png'), summaries)
  save_training_figure(
      os.path.join(workdir, 'training.png'),
      {name: training_curves(os.path.join(workdir, name), rows[name])
       for name in names})
  udr_selection.save_udr_figure(os.path.join(workdir, 'udr_vs_metrics.png'),
                                pooled_scores, pooled_rows, correlations)
  logging.info('Methods side by side:\n%s', markdown_table(result['methods']))
  return result
