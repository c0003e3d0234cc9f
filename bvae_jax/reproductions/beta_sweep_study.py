r"""The β-sweep study's figures and table from a trained β sweep.

Mir (2024), "Disentangled Representation Learning with β-VAE", trains β-VAEs
on dSprites for β ∈ {0.5, 1, 2.5, 5, 7.5, 10, 50} (configs/sweep_beta.py) and
shows the loss terms over training, MIG, Z-diff (the β-VAE score of Higgins
et al. 2017) and modularity against β, and the matrices behind the metrics.

  python -m bvae_jax.main --config=configs/sweep_beta.py:quick,study --workdir=DIR

reads the sweep in DIR (training it first, or resuming it, when
DIR/sweep_results.json is missing) and writes to DIR/study:

  loss_curves.png        Figs. 1–3: KL, reconstruction and total loss against
                         epochs (step × batch / examples per epoch), a curve
                         per β: the mean over seeds, shaded from min to max
  metrics_vs_beta.png    Fig. 5: MIG, Z-diff and modularity against β (log
                         axis), mean ± std over seeds, the β = 1 mean as a red
                         dashed line, the study's values as grey crosses
  mutual_information_beta=B.png, zdiff_classifier_beta=B.png
                         Figs. 6, 7 for β = 1 and β = 10 (the first healthy
                         seed; latents of different seeds do not correspond):
                         the codes × factors mutual information behind MIG and
                         modularity, and the weight each binary model of the
                         β-VAE score's classifier gives each code (columns
                         headed by that factor's accuracy on the eval points)
  traversal_beta=5_seed=S.png
                         Fig. 4: each healthy β = 5 member's final traversal
  study_table.md         Table 1: β × (MIG, Z-diff, modularity), ours as
                         mean ± std over the healthy seeds (sample std,
                         ddof = 1) beside the study's
  study.json             all of it, machine-readable, with each member's UDR
                         and UDR's Spearman ρ with each metric over the
                         members (when the sweep has ≥ 2 seeds; also
                         DIR/udr.json and DIR/udr_vs_metrics.png)

Members that failed in training (status != 'ok' in sweep_results.json) are
left out of everything and listed. A metric the sweep's evaluation did not
compute (configs/sweep_beta.py evaluated no β-VAE score before 2026-11-30)
is computed here from the restored member, with the sweep's
config.eval sample sizes and seed, so it is the number the evaluation would
have written (on a CPU, minutes per dSprites member: the score's pairs
need every factor combination encoded once).
"""

import glob
import json
import os
import shutil
from typing import Any, Mapping, Sequence

from absl import logging
from matplotlib.figure import Figure
import ml_collections
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax.datasets import registry
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.evaluation import evaluate
from bvae_jax.figures import drawing
from bvae_jax.metrics import beta_vae
from bvae_jax.metrics import code_table
from bvae_jax.metrics import mutual_info
from bvae_jax.metrics import sampling
from bvae_jax.metrics import suite
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report
from bvae_jax.sweeps import udr_selection

# The study's Table 1 columns: (sweep_results.json column, the suite metric
# that computes it, the study's name).
METRICS = (
    ('mig.discrete_mig', 'mig', 'MIG'),
    ('beta_vae.eval_accuracy', 'beta_vae', 'Z-diff'),
    ('modularity_explicitness.modularity_score', 'modularity_explicitness',
     'Modularity'),
)

# The study's Table 1: β -> (MIG, Z-diff, modularity); its β = 50 Z-diff is
# nan (the posterior collapsed: every code is constant).
STUDY_TABLE = {
    0.5: (0.1844, 0.4063, 0.6956),
    1.0: (0.4547, 0.3570, 0.7087),
    2.5: (0.3448, 0.3219, 0.6867),
    5.0: (0.3391, 0.3774, 0.6628),
    7.5: (0.2720, 0.3717, 0.6749),
    10.0: (0.5224, 0.3523, 0.6642),
    50.0: (0.0, float('nan'), 0.0),
}

# The loss terms of Figs. 1–3 (TensorBoard tags of every member's run).
LOSS_TERMS = (('kl_total', 'KL (nats)'),
              ('reconstruction', 'reconstruction (nats)'),
              ('loss', 'total loss (recon. + β·KL)'))

# The study's choices of β for the matrices (Figs. 6, 7) and traversals (4).
MATRIX_BETAS = (1.0, 10.0)
TRAVERSAL_BETA = 5.0
BASELINE_BETA = 1.0

STUDY_DIR = 'study'


def split_failed(rows: Sequence[Mapping[str, Any]]
                 ) -> tuple[list[Mapping[str, Any]], list[str]]:
  """(rows of members that trained, 'name (status)' of those that failed)."""
  healthy = [row for row in rows if row.get('status', 'ok') == 'ok']
  failed = [f"{row['member']} ({row['status']})" for row in rows
            if row not in healthy]
  return healthy, failed


def summarise_by_beta(rows: Sequence[Mapping[str, Any]]
                      ) -> dict[float, dict[str, Any]]:
  """Per β (ascending): the healthy seeds and mean ± std of each metric.

  Args:
    rows: sweep_results.json's members (each with 'beta', 'seed', 'status'
      and metric columns).

  Returns:
    {β: {'seeds': [...], column: {'mean', 'std', 'per_seed'}}} for every β
    with a healthy member; std is the sample std (ddof = 1), None for one
    seed, as sweep_report's summary.
  """
  healthy, _ = split_failed(rows)
  summary = {}
  for beta in sorted({row['beta'] for row in healthy}):
    group = [row for row in healthy if row['beta'] == beta]
    summary[beta] = {'seeds': [row['seed'] for row in group]}
    for column, _, _ in METRICS:
      summary[beta][column] = sweep_report.mean_std([row.get(column) for row in group])
  return summary


def steps_to_epochs(steps: np.ndarray, batch_size: int,
                    examples_per_epoch: int) -> np.ndarray:
  """Epochs of training after each of `steps`: step × batch / examples."""
  return np.asarray(steps, float) * batch_size / examples_per_epoch


def loss_curves(workdir: str, rows: Sequence[Mapping[str, Any]]
                ) -> dict[float, dict[str, dict[str, np.ndarray]]]:
  """Each loss term per β over the healthy seeds, from their event files.

  Returns:
    {β: {term: {'steps', 'mean', 'min', 'max'}}}, over the steps that every
    healthy seed of that β logged.
  """
  healthy, _ = split_failed(rows)
  curves = {}
  for beta in sorted({row['beta'] for row in healthy}):
    logged = [metric_logging.read_scalars(
        os.path.join(workdir, sweep.MEMBERS_DIR, row['member']))
              for row in healthy if row['beta'] == beta]
    curves[beta] = {}
    for term, _ in LOSS_TERMS:
      steps = sorted(set.intersection(*(set(s.get(term, {})) for s in logged)))
      if not steps:
        continue
      values = np.array([[s[term][step] for step in steps] for s in logged])
      curves[beta][term] = {'steps': np.array(steps),
                            'mean': values.mean(0), 'min': values.min(0),
                            'max': values.max(0)}
  return curves


def loss_curves_figure(curves: Mapping[float, Mapping[str, Any]],
                       batch_size: int, examples_per_epoch: int) -> Figure:
  """Figs. 1–3: one panel per loss term, one curve per β against epochs."""
  figure = Figure(figsize=(4.2 * len(LOSS_TERMS), 3.4))
  axes = figure.subplots(1, len(LOSS_TERMS))
  for axis, (term, label) in zip(axes, LOSS_TERMS):
    for beta, terms in curves.items():
      if term not in terms:
        continue
      curve = terms[term]
      epochs = steps_to_epochs(curve['steps'], batch_size, examples_per_epoch)
      line, = axis.plot(epochs, curve['mean'], label=f'β = {beta:g}')
      axis.fill_between(epochs, curve['min'], curve['max'],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    axis.set(xlabel='epoch', ylabel=label, title=label.split(' (')[0])
  axes[0].legend(fontsize=7)
  figure.suptitle('Mean over seeds, shaded from min to max', fontsize=9)
  figure.tight_layout()
  return figure


def metrics_vs_beta_figure(summary: Mapping[float, Mapping[str, Any]]
                           ) -> Figure:
  """Fig. 5: each metric against β, ±std bars, the β = 1 mean dashed red."""
  figure = Figure(figsize=(4.2 * len(METRICS), 3.4))
  axes = figure.subplots(1, len(METRICS))
  for axis, (column, _, name) in zip(axes, METRICS):
    betas = [b for b in summary if summary[b][column]['mean'] is not None]
    axis.errorbar(betas, [summary[b][column]['mean'] for b in betas],
                  yerr=[summary[b][column]['std'] or 0.0 for b in betas],
                  marker='o', capsize=3, label='ours (mean ± std)')
    study = [(b, STUDY_TABLE[b][[c for c, _, _ in METRICS].index(column)])
             for b in STUDY_TABLE]
    axis.plot(*zip(*study), 'x', color='0.5', label='Mir (2024)')
    baseline = summary.get(BASELINE_BETA, {}).get(column, {}).get('mean')
    if baseline is not None:
      axis.axhline(baseline, color='red', linestyle='--',
                   label=f'β = {BASELINE_BETA:g} (ours)')
    axis.set_xscale('log')
    axis.set(xlabel='β', ylabel=name, title=name)
  axes[0].legend(fontsize=7)
  figure.tight_layout()
  return figure


def _cell(entry: Mapping[str, Any] | None) -> str:
  if not entry or entry['mean'] is None:
    return '—'
  std = entry['std']
  return f"{entry['mean']:.4f}" + ('' if std is None else f' ± {std:.4f}')


def _study_cell(beta: float, index: int) -> str:
  if beta not in STUDY_TABLE:
    return '—'
  value = STUDY_TABLE[beta][index]
  return 'nan' if np.isnan(value) else f'{value:.4f}'


def markdown_table(summary: Mapping[float, Mapping[str, Any]]) -> str:
  """Table 1's layout: rows β; per metric, ours (mean ± std) and the study's."""
  header = ['β', 'seeds'] + [f'{name} {who}' for _, _, name in METRICS
                             for who in ('(ours)', '(Mir 2024)')]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for beta, entry in summary.items():
    cells = [f'{beta:g}', str(len(entry['seeds']))]
    for index, (column, _, _) in enumerate(METRICS):
      cells += [_cell(entry.get(column)), _study_cell(beta, index)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _with_code_table(ground_truth, representation_fn, eval_config):
  """The suite's shortcut when the β-VAE score is among what is computed:
  every factor combination encoded once, codes looked up (same codes)."""
  wanted = ml_collections.ConfigDict(eval_config.to_dict())
  wanted.metrics = tuple(metric for _, metric, _ in METRICS)
  if not suite.uses_code_table(ground_truth, wanted):
    return ground_truth, representation_fn
  return (code_table.tabulate(ground_truth, representation_fn),
          code_table.identity)


def inspect_member(config: ml_collections.ConfigDict, workdir: str,
                   row: Mapping[str, Any], missing: Sequence[str]
                   ) -> dict[str, Any]:
  """Restores one member; its metric matrices and the `missing` metrics.

  The points are those of the sweep's evaluation (config.eval: seed, sample
  sizes, bins), so the matrices are the ones behind its scores.

  Args:
    config: the sweep config.
    workdir: the sweep's workdir.
    row: the member's row of sweep_results.json.
    missing: suite metric names to compute (e.g. 'beta_vae').

  Returns:
    {'step', 'factor_names', 'mutual_information' (codes × factors, nats),
     'classifier_weights' (codes × factors, the β-VAE classifier's weight of
     each code in each factor's binary model; nan for a factor without one),
     'factor_accuracy' (per factor, on the evaluation points), 'scores'
     ({column: value} of the `missing` metrics)}.
  """
  solo, params, step = sweep.restore_member(config, workdir, row['member'])
  setup = evaluate.prepare_evaluation(
      solo, os.path.join(workdir, sweep.MEMBERS_DIR, row['member']), step,
      params=params)
  c = setup.config.eval
  ground_truth, representation_fn = _with_code_table(
      setup.dataset.ground_truth(), setup.representation_fn, c)
  inputs = sampling.draw_shared_codes(ground_truth, representation_fn,
                                      c.num_train, c.num_test, c.seed)
  information = mutual_info.discrete_mutual_info(
      mutual_info.histogram_discretize(inputs.codes_train, c.num_bins),
      inputs.factors_train)
  # As beta_vae.compute: its own RandomState(seed), so the same score.
  fit = beta_vae.fit_and_evaluate(
      ground_truth, representation_fn, np.random.RandomState(c.seed),
      batch_size=c.batch_size, num_train=c.num_train, num_eval=c.num_test)
  num_factors = information.shape[1]
  weights = np.full((num_factors, information.shape[0]), np.nan)
  weights[fit.classifier.positive_classes()] = fit.classifier.code_weights()
  scores, _ = suite.run([m for m in missing if m != 'beta_vae'], inputs, c)
  scores = {f'{metric}.{key}': value for metric, values in scores.items()
            for key, value in values.items()}
  if 'beta_vae' in missing:
    scores['beta_vae.eval_accuracy'] = fit.eval_accuracy
    scores['beta_vae.train_accuracy'] = fit.train_accuracy
  return {'step': step, 'factor_names': list(ground_truth.factor_names),
          'mutual_information': information,
          'classifier_weights': weights.T,
          'factor_accuracy': fit.per_factor_accuracy(num_factors),
          'scores': scores}


def _kl_per_latent(row: Mapping[str, Any]) -> np.ndarray:
  """The member's final training KL per latent (sweep_results' kl_z<i>)."""
  latents = sorted((c for c in row if c.startswith('kl_z')),
                   key=lambda c: int(c[len('kl_z'):]))
  return np.array([row[c] for c in latents])


def save_classifier_weights_figure(path: str, weights: np.ndarray,
                                   latent_order: np.ndarray,
                                   factor_accuracy: np.ndarray,
                                   factor_names: Sequence[str],
                                   title: str) -> None:
  """Heat map of |weight| of each code (row) in each factor's model (column)."""
  rows, cols = weights.shape
  figure = Figure(figsize=(1.2 + 0.9 * cols, 0.8 + 0.4 * rows))
  axes = figure.subplots()
  image = axes.imshow(np.abs(weights), cmap='viridis', aspect='auto')
  axes.set_xticks(range(cols), [f'{name}\nacc {acc:.2f}' for name, acc in
                                zip(factor_names, factor_accuracy)],
                  rotation=30, ha='right')
  axes.set_yticks(range(rows), [f'z{i}' for i in latent_order])
  figure.colorbar(image, label='|weight| on mean |z1 − z2|')
  axes.set_title(title, fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def save_member_matrices(out_dir: str, row: Mapping[str, Any],
                         inspected: Mapping[str, Any]) -> list[str]:
  """Figs. 6, 7 for one member: its MI and classifier-weight matrices."""
  kl = _kl_per_latent(row)
  order = drawing.latent_order_by_kl(kl)
  suffix = f"beta={row['beta']:g}"
  paths = [os.path.join(out_dir, f'mutual_information_{suffix}.png'),
           os.path.join(out_dir, f'zdiff_classifier_{suffix}.png')]
  drawing.save_mutual_information_figure(
      paths[0], inspected['mutual_information'][order], order, kl[order],
      inspected['factor_names'], inspected['step'],
      inactive=capacity_diagnostics.inactive_latents(kl[order]))
  save_classifier_weights_figure(
      paths[1], inspected['classifier_weights'][order], order,
      inspected['factor_accuracy'], inspected['factor_names'],
      f"{row['member']}: Z-diff classifier, per-factor eval accuracy")
  return paths


def copy_traversals(workdir: str, out_dir: str,
                    rows: Sequence[Mapping[str, Any]], beta: float
                    ) -> list[str]:
  """Fig. 4: the last traversal PNG of each healthy member of `beta`."""
  copied = []
  for row in split_failed(rows)[0]:
    if row['beta'] != beta:
      continue
    found = sorted(glob.glob(os.path.join(
        workdir, sweep.MEMBERS_DIR, row['member'], 'figures',
        'traversal_*.png')))
    if found:
      copied.append(os.path.join(
          out_dir, f"traversal_beta={beta:g}_seed={row['seed']}.png"))
      shutil.copyfile(found[-1], copied[-1])
  return copied


def examples_per_epoch(config: ml_collections.ConfigDict) -> int:
  """The training subset's size, else the whole data set's."""
  if config.train_subset_size:
    return config.train_subset_size
  return registry.open_dataset(config.dataset, config.dataset_source,
                               config.data_dir).num_records


def run(config: ml_collections.ConfigDict, workdir: str, *,
        matrix_betas: Sequence[float] = MATRIX_BETAS,
        traversal_beta: float = TRAVERSAL_BETA,
        udr_num_points: int = udr_selection.DEFAULT_NUM_POINTS
        ) -> dict[str, Any]:
  """Trains the sweep if it has not finished, then writes DIR/study.

  Args:
    config: a β sweep config (configs/sweep_beta.py).
    workdir: the sweep's workdir.
    matrix_betas: the β whose matrices are drawn (first healthy seed each).
    traversal_beta: the β whose traversals are copied.
    udr_num_points: observations for UDR (each β's seeds scored against each
      other, bvae_jax/sweeps/udr_selection.py; DIR/udr.json and
      DIR/udr_vs_metrics.png); 0, or a single seed, skips it.

  Returns:
    The dict written to study.json.

  Raises:
    ValueError: the sweep does not sweep β.
  """
  if 'beta' not in (config.sweep.grid or {}):
    raise ValueError('the β-sweep study needs config.sweep.grid.beta; see '
                     'configs/sweep_beta.py')
  if not os.path.exists(sweep_report.results_path(workdir)):
    sweep.train_sweep(config, workdir)
  rows = [dict(row) for row in sweep_report.read_member_rows(workdir)]
  healthy, failed = split_failed(rows)
  if failed:
    logging.warning('Left out, failed in training: %s', ', '.join(failed))
  out_dir = os.path.join(workdir, STUDY_DIR)
  os.makedirs(out_dir, exist_ok=True)

  matrix_rows = [next(r for r in healthy if r['beta'] == beta)
                 for beta in matrix_betas
                 if any(r['beta'] == beta for r in healthy)]
  if len(matrix_rows) < len(matrix_betas):
    drawn = {row['beta'] for row in matrix_rows}
    logging.warning('No matrices for β in %s: no healthy member.',
                    sorted(set(matrix_betas) - drawn))
  computed_here, matrices = {}, {}
  for row in healthy:
    # Absent, not None: None is a nan the evaluation wrote.
    missing = [metric for column, metric, _ in METRICS if column not in row]
    if not missing and row not in matrix_rows:
      continue
    logging.info('Restoring %s for %s.', row['member'],
                 ', '.join(missing + ['matrices'] * (row in matrix_rows)))
    inspected = inspect_member(config, workdir, row, missing)
    row.update(inspected['scores'])
    if missing:
      computed_here[row['member']] = inspected['scores']
    if row in matrix_rows:
      matrices[row['member']] = {
          **{k: inspected[k] for k in ('step', 'factor_names',
                                       'mutual_information',
                                       'classifier_weights',
                                       'factor_accuracy')},
          'figures': save_member_matrices(out_dir, row, inspected)}

  summary = summarise_by_beta(rows)
  per_epoch = examples_per_epoch(config)
  figure = loss_curves_figure(loss_curves(workdir, rows), config.batch_size,
                              per_epoch)
  figure.savefig(os.path.join(out_dir, 'loss_curves.png'), dpi=100)
  metrics_vs_beta_figure(summary).savefig(
      os.path.join(out_dir, 'metrics_vs_beta.png'), dpi=100)
  result = {
      'num_train_steps': config.num_train_steps,
      'epochs': float(steps_to_epochs(config.num_train_steps,
                                      config.batch_size, per_epoch)),
      'examples_per_epoch': per_epoch,
      'left_out_failed': failed,
      'computed_here': computed_here,
      'betas': {beta: {**entry, 'study': dict(zip(
          [c for c, _, _ in METRICS], STUDY_TABLE.get(beta, ())))}
                for beta, entry in summary.items()},
      'study_table': {beta: dict(zip([name for _, _, name in METRICS], values))
                      for beta, values in STUDY_TABLE.items()},
      'matrices': matrices,
      'traversals': copy_traversals(workdir, out_dir, rows, traversal_beta),
  }
  if udr_num_points and len(config.sweep.seeds) >= 2:
    try:
      udr_summary = udr_selection.udr_of_sweep(config, workdir,
                                               num_points=udr_num_points)
      result['udr'] = {key: udr_summary[key]
                       for key in ('members', 'rank_correlation')}
    except ValueError as error:  # No β with two healthy seeds.
      logging.warning('No UDR: %s', error)
  if not result['traversals']:
    logging.warning('No traversal: no healthy β = %g member has one.',
                    traversal_beta)
  with open(os.path.join(out_dir, 'study_table.md'), 'w') as f:
    f.write(f"# β sweep: {config.num_train_steps} steps "
            f"({result['epochs']:.3g} epochs), mean ± std over seeds\n\n")
    if failed:
      f.write('Left out (failed in training): ' + ', '.join(failed) + '\n\n')
    f.write(markdown_table(summary))
  with open(os.path.join(out_dir, 'study.json'), 'w') as f:
    json.dump(sweep_report.json_safe(result), f, indent=1)
  logging.info('Table 1 beside ours (%s):\n%s', out_dir, markdown_table(summary))
  return result
