r"""The 50,000-step study's tables and figure, built from its committed results folders.

configs/study_50k.py trains one (method, seed) per command; each finished run
is published (`main --mode=publish`, bvae_jax/evaluation/study_results.py) to
`RESULTS/<method>_s<seed>/`. This module reads those folders only — no
checkpoint, no workdir — and writes to RESULTS/:

  study.json   per method and evaluated step: mean ± sd over seeds (and each
               seed's value) of every headline metric, the reconstruction NLL
               and KL at that step, the informative latents; per seed whether
               the encoder collapsed; per metric whether the methods' ranking
               changed between the evaluated steps
  study.md     the headline (the README's table: each method's seeds at
               the last evaluated step, mean ± sd, with its zoo models); each
               pair of methods' differences there, with Welch's t-test over
               seeds; the table at each evaluated step; the ranking changes
  study.png    each metric against steps: a line per method (seed mean),
               seeds as points

  python -m bvae_jax.reproductions.study_50k --results=docs/results/study_50k
"""

import json
import os
import re
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np
from scipy import stats

from bvae_jax import zoo
from bvae_jax.core import run_records
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.figures import drawing
from bvae_jax.sweeps import sweep_report

# (key, label): metric keys are '<metric>.<value>' of metrics.json; the rest
# come from history.json at the evaluated step.
COLUMNS = (
    ('mig.discrete_mig', 'MIG'),
    ('factor_vae.eval_accuracy', 'FactorVAE score'),
    ('dci.disentanglement', 'DCI disentanglement'),
    ('beta_vae.eval_accuracy', 'β-VAE score'),
    ('modularity_explicitness.modularity_score', 'modularity'),
    ('sap.SAP_score', 'SAP'),
    ('reconstruction', 'reconstruction NLL'),
    ('kl_total', 'KL'),
    ('informative_latents', 'informative latents'),
)
# Metrics whose ranking across methods the study compares between steps
# (higher is better for each).
RANKED = COLUMNS[:6]
RUN_FOLDER = re.compile(r'^(?P<method>.+)_s(?P<seed>\d+)$')


def _read(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def read_runs(results_root: str) -> list[dict[str, Any]]:
  """Every published run under `results_root` (folders '<method>_s<seed>'
  holding run.json), sorted by method and seed.

  Raises:
    FileNotFoundError: a run folder lacks one of its files (names it).
  """
  runs = []
  for name in sorted(os.listdir(results_root)):
    match = RUN_FOLDER.match(name)
    folder = os.path.join(results_root, name)
    if not match or not os.path.isfile(os.path.join(folder, 'run.json')):
      continue
    run = {'folder': name, 'method': match['method'],
           'seed': int(match['seed'])}
    for part in ('run', 'metrics', 'history'):
      path = os.path.join(folder, f'{part}.json')
      if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} is missing: republish the run')
      run[part] = _read(path)
    runs.append(run)
  return sorted(runs, key=lambda run: (run['method'], run['seed']))


def values_at(run: dict[str, Any], step: int) -> dict[str, float]:
  """The COLUMNS of one run at an evaluated step (None where absent)."""
  result = run['metrics'].get(str(step))
  values: dict[str, float] = {}
  if result is not None:
    for key, _ in COLUMNS:
      metric, _, field = key.partition('.')
      if field:
        values[key] = result['metrics'].get(metric, {}).get(field)
    values['informative_latents'] = (
        len(result['informative_latents'])
        if 'informative_latents' in result else None)
  history = run['history']
  logged = [i for i, s in enumerate(history['step']) if s <= step]
  if logged:
    last = logged[-1]
    for key in ('reconstruction', 'kl_total'):
      values[key] = history[key][last] if key in history else None
  return values


def collapsed(run: dict[str, Any]) -> bool | None:
  """Whether the run ended collapsed (capacity_diagnostics.CollapseMonitor's
  rule on its last log interval); None where the run logged no information
  (runs before it was logged)."""
  history = run['history']
  if 'information' not in history:
    return None
  kl, input_part = history['kl_total'][-1], history['information'][-1]
  return capacity_diagnostics.is_collapsed(kl, input_part)


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """{'steps', 'methods': {method: {'seeds', 'collapsed', str(step):
  {column: mean_std}}}, 'ranking': {column: {str(step): [methods, best
  first]}, 'ranking_changed': {column: bool}, 'comparisons':
  `comparisons`}."""
  steps = sorted({int(s) for run in runs for s in run['metrics']})
  methods: dict[str, Any] = {}
  for run in runs:
    entry = methods.setdefault(run['method'], {'seeds': [], 'collapsed': [],
                                               'runs': []})
    entry['seeds'].append(run['seed'])
    entry['collapsed'].append(collapsed(run))
    entry['runs'].append(run['folder'])
  for name, entry in methods.items():
    own = [run for run in runs if run['method'] == name]
    for step in steps:
      rows = [values_at(run, step) for run in own]
      entry[str(step)] = {key: sweep_report.mean_std(
          [row.get(key) for row in rows]) for key, _ in COLUMNS}
  ranking, changed = {}, {}
  for key, _ in RANKED:
    ranking[key] = {}
    for step in steps:
      scored = [(methods[m][str(step)][key]['mean'], m) for m in methods
                if methods[m][str(step)][key]['mean'] is not None]
      ranking[key][str(step)] = [m for _, m in sorted(scored, reverse=True)]
    orders = [order for order in ranking[key].values() if len(order) > 1]
    changed[key] = any(order != orders[0] for order in orders)
  summary = {'steps': steps, 'methods': methods, 'ranking': ranking,
             'ranking_changed': changed}
  summary['comparisons'] = comparisons(summary)
  return summary


# The headline's columns (the issue's: the README's results table) and the
# methods' names there.
HEADLINE = ('mig.discrete_mig', 'factor_vae.eval_accuracy',
            'dci.disentanglement', 'beta_vae.eval_accuracy', 'reconstruction',
            'kl_total')
METHOD_LABELS = {
    'capacity': 'capacity (γ = 1000, C → 25 over 40k)',
    'capacity_gamma100': 'capacity (γ = 100, C → 25 over 40k)',
    'beta_vae': 'β-VAE (β = 4)',
    'beta_tcvae': 'β-TCVAE (β = 6)',
}


def zoo_models(results_root: str, zoo_dir: str = zoo.ZOO_DIR
               ) -> dict[str, str]:
  """{run folder: zoo model} for the zoo cards whose `results` is a folder
  of `results_root` (as `--mode=publish` writes it)."""
  root = os.path.normpath(os.path.abspath(results_root))
  models = {}
  if not os.path.isdir(zoo_dir):
    return models
  for name in zoo.list_models(zoo_dir):
    results = zoo.read_card(name, zoo_dir).get('results')
    if not results:
      continue
    folder = os.path.normpath(results if os.path.isabs(results) else
                              os.path.join(os.path.dirname(zoo_dir), results))
    if os.path.dirname(folder) == root:
      models[os.path.basename(folder)] = name
  return models


def headline(summary: dict[str, Any], models: dict[str, str]) -> list[str]:
  """Markdown lines: at the last evaluated step, per method its seeds (and
  how many collapsed), each HEADLINE column's mean ± sd, and its zoo models."""
  step = summary['steps'][-1]
  labels = dict(COLUMNS)
  lines = [f'### Headline: step {step:,}, mean ± sd over seeds', '',
           '| method | seeds | ' + ' | '.join(labels[k] for k in HEADLINE) +
           ' | zoo models |', '|---|---|' + '---|' * (len(HEADLINE) + 1)]
  for name, entry in summary['methods'].items():
    known = [c for c in entry['collapsed'] if c is not None]
    seeds = f"{len(entry['seeds'])}"
    if known and any(known):
      seeds += f' ({sum(known)} collapsed)'
    cells = [sweep_report.format_mean_std(
                 entry[str(step)][key],
                 1 if key in ('reconstruction', 'kl_total') else 3)
             for key in HEADLINE]
    zoo_cell = ', '.join(f'`{models[run]}`' for run in entry['runs']
                         if run in models) or '—'
    lines.append(f'| {METHOD_LABELS.get(name, name)} | {seeds} | ' +
                 ' | '.join(cells) + f' | {zoo_cell} |')
  return lines + ['']


# The columns whose differences between methods are tested.
COMPARED = HEADLINE[:5]


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
  """Two-sided p of Welch's t-test of two methods' seeds; None where either
  has fewer than 2 seeds or both have no spread (the test is undefined)."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
    return None
  return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def comparisons(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """At the last evaluated step, for each pair of methods (in the summary's
  order) and each COMPARED column: the difference of the seed means (first
  minus second) and Welch's p."""
  step = str(summary['steps'][-1])
  names = list(summary['methods'])
  pairs = []
  for i, first in enumerate(names):
    for second in names[i + 1:]:
      entry = {'first': first, 'second': second}
      for key in COMPARED:
        a = summary['methods'][first][step][key]
        b = summary['methods'][second][step][key]
        if a['mean'] is None or b['mean'] is None:
          entry[key] = {'difference': None, 'p': None}
          continue
        entry[key] = {'difference': a['mean'] - b['mean'],
                      'p': welch_p(a['per_seed'], b['per_seed'])}
      pairs.append(entry)
  return pairs


def comparison_table(summary: dict[str, Any]) -> list[str]:
  """Markdown lines for `comparisons`."""
  labels = dict(COLUMNS)
  step = summary['steps'][-1]
  lines = [f'### Differences at step {step:,} (first minus second; Welch\'s '
           't-test over seeds, two-sided p)', '',
           '| methods | ' + ' | '.join(labels[k] for k in COMPARED) + ' |',
           '|---|' + '---|' * len(COMPARED)]
  for pair in summary['comparisons']:
    cells = []
    for key in COMPARED:
      difference, p = pair[key]['difference'], pair[key]['p']
      decimals = 1 if key == 'reconstruction' else 3
      cells.append('—' if difference is None else
                   f'{difference:+.{decimals}f}' +
                   ('' if p is None else
                    f' (p {p:.2f})' if p >= 0.01 else f' (p {p:.0e})'))
    lines.append(f"| {pair['first']} − {pair['second']} | " +
                 ' | '.join(cells) + ' |')
  return lines + ['']


def _cell(entry: dict[str, Any]) -> str:
  if entry['mean'] is None:
    return '—'
  if entry['std'] is None:
    return f"{entry['mean']:.3g}"
  return f"{entry['mean']:.3g} ± {entry['std']:.2g}"


def markdown(summary: dict[str, Any]) -> str:
  """The headline (with `summary['zoo_models']` where `write_report` found
  them), the differences, the table at each evaluated step, the ranking
  changes."""
  lines = headline(summary, summary.get('zoo_models', {}))
  if summary.get('comparisons'):
    lines += comparison_table(summary)
  labels = [label for _, label in COLUMNS]
  for step in summary['steps']:
    lines += [f'### Step {step:,}', '',
              '| method | seeds | collapsed | ' + ' | '.join(labels) + ' |',
              '|---|---|---|' + '---|' * len(labels)]
    for name, entry in summary['methods'].items():
      known = [c for c in entry['collapsed'] if c is not None]
      unknown = len(entry['collapsed']) - len(known)
      # Runs that logged no information cannot say: '—' rather than 0, and
      # counted apart so that "0 of 1" of two seeds does not read as a typo.
      collapsed_cell = ' '.join(
          ([f'{sum(known)} of {len(known)}'] if known else ['—']) +
          ([f'({unknown} not logged)'] if unknown and known else []))
      lines.append(
          f"| {name} | {len(entry['seeds'])} ({', '.join(map(str, entry['seeds']))}) "
          f"| {collapsed_cell} | " +
          ' | '.join(_cell(entry[str(step)][key]) for key, _ in COLUMNS) + ' |')
    lines.append('')
  lines += ['"collapsed": seeds whose encoder had collapsed at their last log '
            'interval (capacity_diagnostics.is_collapsed), of the seeds that '
            'logged the information about the input; "not logged": runs from '
            'before that log existed.', '']
  lines += ['### Ranking by seed mean (best first)', '',
            '| metric | ' + ' | '.join(f'step {s:,}' for s in summary['steps'])
            + ' | changed |', '|---|' + '---|' * (len(summary['steps']) + 1)]
  for key, label in RANKED:
    orders = summary['ranking'][key]
    lines.append(f'| {label} | ' + ' | '.join(
        ' > '.join(orders[str(s)]) for s in summary['steps']) +
                 f" | {'yes' if summary['ranking_changed'][key] else 'no'} |")
  return '\n'.join(lines) + '\n'


def save_figure(path: str, summary: dict[str, Any]) -> None:
  """Each column against steps: seed-mean line per method, seeds as dots."""
  figure, axes = drawing.panel_grid(len(COLUMNS), (3.2, 2.8))
  steps = summary['steps']
  for axis, (key, label) in zip(axes, COLUMNS):
    for index, (name, entry) in enumerate(summary['methods'].items()):
      colour = f'C{index}'
      means = [entry[str(s)][key]['mean'] for s in steps]
      points = [(s, v) for s in steps for v in entry[str(s)][key]['per_seed']]
      axis.plot(steps, [np.nan if m is None else m for m in means], '-',
                color=colour, label=name)
      if points:
        axis.plot(*zip(*points), '.', color=colour, alpha=0.6)
    axis.set_title(label, fontsize=9)
    axis.set_xlabel('step', fontsize=8)
  axes[0].legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def write_report(results_root: str, zoo_dir: str = zoo.ZOO_DIR
                 ) -> dict[str, Any]:
  """Writes study.json, study.md and study.png in `results_root`; the zoo
  models named in the headline are those of `zoo_dir` (`zoo_models`).

  Raises:
    FileNotFoundError: no published run under `results_root`.
  """
  runs = read_runs(results_root)
  if not runs:
    raise FileNotFoundError(f'No published run (<method>_s<seed>/run.json) in '
                            f'{results_root}')
  summary = summarise(runs)
  summary['zoo_models'] = zoo_models(results_root, zoo_dir)
  run_records.write_json(os.path.join(results_root, 'study.json'),
                  sweep_report.json_safe(summary))
  with open(os.path.join(results_root, 'study.md'), 'w') as f:
    f.write(markdown(summary))
  save_figure(os.path.join(results_root, 'study.png'), summary)
  return summary


FLAGS = flags.FLAGS
flags.DEFINE_string('results', 'docs/results/study_50k',
                    'The folder of published runs (<method>_s<seed>/).')


def main(argv):
  del argv
  summary = write_report(FLAGS.results)
  print(markdown(summary))


if __name__ == '__main__':
  app.run(main)
