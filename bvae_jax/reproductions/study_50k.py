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
  study.md     the table at each evaluated step, and the ranking changes
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
  first]}, 'ranking_changed': {column: bool}}."""
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
  return {'steps': steps, 'methods': methods, 'ranking': ranking,
          'ranking_changed': changed}


def _cell(entry: dict[str, Any]) -> str:
  if entry['mean'] is None:
    return '—'
  if entry['std'] is None:
    return f"{entry['mean']:.3g}"
  return f"{entry['mean']:.3g} ± {entry['std']:.2g}"


def markdown(summary: dict[str, Any]) -> str:
  """The table at each evaluated step, and the ranking changes."""
  lines = []
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


def write_report(results_root: str) -> dict[str, Any]:
  """Writes study.json, study.md and study.png in `results_root`.

  Raises:
    FileNotFoundError: no published run under `results_root`.
  """
  runs = read_runs(results_root)
  if not runs:
    raise FileNotFoundError(f'No published run (<method>_s<seed>/run.json) in '
                            f'{results_root}')
  summary = summarise(runs)
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
