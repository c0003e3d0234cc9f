r"""Controlled capacity against β-VAE, β-TCVAE, FactorVAE and DIP-VAE-I.

configs/compare_methods.py names the methods, their one setting each, and the
shared budget. This module trains each method as a sweep over the config's
seeds in DIR/<method> (resuming what is there; a method whose sweep finished
is only read), evaluates every member with the metric suite, and writes:

  comparison.json   per method: each seed's scores, and mean ± std over the
                    healthy seeds of every metric, the final reconstruction
                    NLL and KL (and |KL − C| for capacity)
  comparison.md     the headline table, methods × metrics, mean ± std
  comparison.png    each headline metric by method, one dot per seed

  python -m bvae_jax.reproductions.method_comparison --config=configs/compare_methods.py:quick --workdir=DIR
"""

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags
from matplotlib.figure import Figure
import ml_collections
from ml_collections import config_flags
import numpy as np

from bvae_jax import devices
from bvae_jax import experiment_config
from bvae_jax import sweep
from bvae_jax import sweep_report

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
  del method['methods']
  experiment_config.set_objective(method, fields.pop('objective'))
  method.update(fields)
  return method


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Validates every method's training config (names the method on error)."""
  if not config.methods:
    raise ValueError('config.methods is empty')
  for name in config.methods:
    try:
      experiment_config.validate_config(method_config(config, name))
    except ValueError as error:
      raise ValueError(f'config.methods.{name}: {error}') from error


def summarise_method(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Mean, std and per-seed values of every headline column, healthy seeds."""
  healthy = [row for row in rows if row.get('status', 'ok') == 'ok']
  summary = {'seeds': [row['seed'] for row in healthy],
             'failed': [row['member'] for row in rows if row not in healthy]}
  for column, _ in HEADLINE:
    values = [row[column] for row in healthy if row.get(column) is not None]
    if values:
      summary[column] = {'mean': float(np.mean(values)),
                         'std': float(np.std(values)),
                         'per_seed': [float(v) for v in values]}
  return summary


def markdown_table(summaries: dict[str, dict[str, Any]]) -> str:
  """Methods × headline columns, 'mean ± std (n)'."""
  columns = [(c, label) for c, label in HEADLINE
             if any(c in s for s in summaries.values())]
  lines = ['| method | seeds | ' + ' | '.join(l for _, l in columns) + ' |',
           '|---|---|' + '---|' * len(columns)]
  for name, summary in summaries.items():
    cells = []
    for column, _ in columns:
      entry = summary.get(column)
      cells.append('—' if entry is None else
                   f"{entry['mean']:.3g} ± {entry['std']:.2g}")
    lines.append(f"| {name} | {len(summary['seeds'])} | " +
                 ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def save_comparison_figure(path: str, summaries: dict[str, dict[str, Any]]
                           ) -> None:
  """One panel per headline metric present: a dot per seed, a bar for the mean."""
  columns = [(c, l) for c, l in HEADLINE
             if any(c in s for s in summaries.values())]
  if not columns:
    return
  names = list(summaries)
  figure = Figure(figsize=(2.6 * len(columns), 3.2))
  axes = np.atleast_1d(figure.subplots(1, len(columns)))
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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates each method (resuming), then compares them."""
  validate_config(config)
  summaries = {}
  # The capacity model first (the one compared), then the baselines by name.
  for name in sorted(config.methods, key=lambda n: (n != 'capacity', n)):
    method_dir = os.path.join(workdir, name)
    if not os.path.exists(sweep_report.results_path(method_dir)):
      sweep.train_sweep(method_config(config, name),
                        method_dir)
    summaries[name] = summarise_method(
        sweep_report.read_member_rows(method_dir))
  result = {'num_train_steps': config.num_train_steps,
            'seeds': list(config.sweep.seeds),
            'settings': config.methods.to_dict(),
            'methods': summaries}
  with open(os.path.join(workdir, 'comparison.json'), 'w') as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(workdir, 'comparison.md'), 'w') as f:
    f.write(f'# Methods compared: {config.num_train_steps} steps, seeds '
            f'{list(config.sweep.seeds)}\n\n' + markdown_table(summaries))
  save_comparison_figure(os.path.join(workdir, 'comparison.png'), summaries)
  return result


def main(argv):
  del argv
  config = flags.FLAGS.config
  devices.configure_host_devices(0, config.batch_size)
  result = run(config, flags.FLAGS.workdir)
  print(markdown_table(result['methods']))


if __name__ == '__main__':
  config_flags.DEFINE_config_file('config', None,
                                  'configs/compare_methods.py[:quick]',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Where the sweeps and tables go.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
