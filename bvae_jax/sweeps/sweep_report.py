"""The table and plot that end a sweep: one row per member, mean ± std per setting.

Files written to the sweep's workdir:
  sweep_results.csv   one row per member: seed, swept values, status, the final
                      logging interval's loss terms and per-latent KL, and the
                      metrics of its evaluation (if config.sweep.evaluate).
  sweep_results.md    the same as a Markdown table, then a summary table with
                      mean ± std over seeds for each hyperparameter setting
                      (sample standard deviation, ddof = 1; failed members
                      are listed but left out of the statistics).
  sweep_results.json  all of it, machine-readable.
  sweep_<metric>.png  config.sweep.plot_metric against the swept value: one
                      point per seed and the mean ± std.
"""

import csv
import json
import os
from typing import Any, Callable, Mapping, Sequence

from matplotlib.figure import Figure
import numpy as np

from bvae_jax.core import run_records



def loss_columns(final: Mapping[str, np.ndarray]) -> list[str]:
  """The scalar terms of the step's metrics, in the objective's order.

  Each objective names its terms (bvae_jax/objectives); every scalar one gets
  a column, so a new objective's terms reach the tables without edits here.
  """
  return [name for name, values in final.items() if np.ndim(values) == 1]


def member_rows(members: Sequence[Any], final: Mapping[str, np.ndarray],
                failed_at: np.ndarray,
                evaluations: Mapping[str, Mapping[str, Any]]
                ) -> list[dict[str, Any]]:
  """One dict per member: identity, status, loss terms, KL per latent, metrics."""
  rows = []
  for member in members:
    i = member.index
    row = {'member': member.name, 'seed': member.seed, **member.values,
           'status': (f'failed at step {failed_at[i]}' if failed_at[i]
                      else 'ok')}
    for column in loss_columns(final):
      row[column] = float(final[column][i])
    for latent, kl in enumerate(np.asarray(final['kl_per_latent'][i])):
      row[f'kl_z{latent}'] = float(kl)
    metrics = evaluations.get(member.name, {}).get('metrics', {})
    for metric, values in sorted(metrics.items()):
      for key, value in sorted(values.items()):
        row[f'{metric}.{key}'] = float(value)
    rows.append(row)
  return rows


def summary_rows(rows: Sequence[Mapping[str, Any]], swept: Sequence[str]
                 ) -> list[dict[str, Any]]:
  """Mean and std over the healthy seeds of each hyperparameter setting."""
  numeric = [c for c in rows[0] if c not in ('member', 'seed', 'status',
                                             *swept)
             and not c.startswith('kl_z')] if rows else []
  groups: dict[tuple, list] = {}
  for row in rows:
    groups.setdefault(tuple(row[f] for f in swept), []).append(row)
  summary = []
  for setting, group in groups.items():
    healthy = [r for r in group if r['status'] == 'ok']
    entry = {**dict(zip(swept, setting)), 'seeds': len(group),
             'failed': len(group) - len(healthy)}
    for column in numeric:
      values = np.array([r.get(column, np.nan) for r in healthy], float)
      values = values[np.isfinite(values)]
      entry[column] = (float(values.mean()) if len(values) else np.nan,
                       float(values.std(ddof=1)) if len(values) > 1 else np.nan)
    summary.append(entry)
  return summary


def _cell(value: Any) -> str:
  if isinstance(value, tuple):
    mean, std = value
    if np.isnan(mean):
      return '—'
    return f'{mean:.4g}' + ('' if np.isnan(std) else f' ± {std:.2g}')
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """A GitHub Markdown table of `rows` (columns: the union, in order)."""
  columns = list(dict.fromkeys(c for row in rows for c in row))
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '---|' * len(columns)]
  for row in rows:
    lines.append('| ' + ' | '.join(_cell(row.get(c, '')) for c in columns) +
                 ' |')
  return '\n'.join(lines)


def plot_metric(path: str, rows: Sequence[Mapping[str, Any]],
                swept: Sequence[str], metric: str) -> bool:
  """Plots `metric` against the first swept field; one line per other setting.

  Returns:
    False (and writes nothing) when there is no swept field or no member has
    the metric.
  """
  if not swept or not any(metric in r for r in rows):
    return False
  x_field, other = swept[0], list(swept[1:])
  figure = Figure(figsize=(5.5, 3.6))
  axes = figure.subplots()
  lines: dict[tuple, list] = {}
  for row in rows:
    lines.setdefault(tuple(row[f] for f in other), []).append(row)
  for setting, group in lines.items():
    healthy = [r for r in group if r['status'] == 'ok' and metric in r]
    label = ', '.join(f'{f}={v:g}' for f, v in zip(other, setting)) or None
    xs = sorted({r[x_field] for r in healthy})
    per_x = [[r[metric] for r in healthy if r[x_field] == x] for x in xs]
    points = axes.scatter([r[x_field] for r in healthy],
                          [r[metric] for r in healthy], alpha=0.35, s=14)
    axes.errorbar(xs, [np.mean(v) for v in per_x],
                  yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in per_x],
                  color=points.get_facecolor()[0][:3], marker='o', capsize=3,
                  label=label)
  values = [r[x_field] for r in rows]
  if min(values) > 0 and max(values) / min(values) >= 20:
    axes.set_xscale('log')
  axes.set_xlabel(x_field)
  axes.set_ylabel(metric)
  axes.set_title(f'{metric} vs {x_field} (points: seeds; bars: mean ± std)',
                 fontsize=9)
  if any(label for label in lines if label):
    axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  return True


def json_safe(value: Any) -> Any:
  """What json.dump can write: NaN becomes None (JSON has no NaN), arrays and
  tuples lists, float keys strings ('{:g}')."""
  if isinstance(value, dict):
    return {f'{k:g}' if isinstance(k, float) else k: json_safe(v)
            for k, v in value.items()}
  if isinstance(value, np.ndarray):
    return json_safe(value.tolist())
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, float) and not np.isfinite(value):
    return None
  return value


def mean_std(values: Sequence[float]) -> dict[str, Any]:
  """Mean, sample std (ddof = 1; None for one value) and the finite values.

  None and non-finite values are left out; with none left, mean is None.
  """
  values = [float(v) for v in values if v is not None and np.isfinite(v)]
  if not values:
    return {'mean': None, 'std': None, 'per_seed': []}
  return {'mean': float(np.mean(values)),
          'std': float(np.std(values, ddof=1)) if len(values) > 1 else None,
          'per_seed': values}


def format_mean_std(entry: dict[str, Any], decimals: int = 3) -> str:
  """`mean_std`'s dict as 'mean ± std', 'mean' for one value, '—' for none."""
  if entry['mean'] is None:
    return '—'
  if entry['std'] is None:
    return f"{entry['mean']:.{decimals}f}"
  return f"{entry['mean']:.{decimals}f} ± {entry['std']:.{decimals}f}"


def write_sweep_summaries(sweep_dirs: Sequence[str], out_dir: str, stem: str,
                          summarise: Callable[[str], Any],
                          to_markdown: Callable[[dict[str, Any]], str]
                          ) -> dict[str, Any]:
  """A report over finished sweeps: out_dir/<stem>.json and <stem>.md.

  Args:
    sweep_dirs: the sweeps' workdirs; each is named by its folder.
    out_dir: the report's folder (created).
    stem: the files' name.
    summarise: a sweep's workdir -> its summary.
    to_markdown: {name: summary} -> the Markdown file's text.

  Returns:
    {name: summary}.
  """
  summaries = {os.path.basename(os.path.normpath(d)): summarise(d)
               for d in sweep_dirs}
  os.makedirs(out_dir, exist_ok=True)
  run_records.write_json(os.path.join(out_dir, f'{stem}.json'),
                         json_safe(summaries))
  with open(os.path.join(out_dir, f'{stem}.md'), 'w') as f:
    f.write(to_markdown(summaries))
  return summaries


RESULTS_JSON = 'sweep_results.json'


def results_path(workdir: str) -> str:
  """Where write_rows puts the machine-readable results of a sweep."""
  return os.path.join(workdir, RESULTS_JSON)


def read_member_rows(workdir: str) -> list[dict[str, Any]]:
  """The per-member rows write_rows wrote to workdir/sweep_results.json.

  Raises:
    FileNotFoundError: the sweep in `workdir` has not finished.
  """
  with open(results_path(workdir)) as f:
    return json.load(f)['members']


def write_rows(workdir: str, rows: Sequence[Mapping[str, Any]], *,
               swept: Sequence[str], num_train_steps: int,
               plot_metric_name: str) -> list[str]:
  """Writes the CSV, Markdown, JSON and plot; returns their paths.

  Args:
    workdir: the sweep's workdir.
    rows: `member_rows(...)`, or the rows of merged sweeps (sweep_merge).
    swept: the grid's fields (config.sweep.grid's keys).
    num_train_steps: the step the rows are of.
    plot_metric_name: the metric to plot (config.sweep.plot_metric).
  """
  swept = list(swept)
  summary = summary_rows(rows, swept)
  paths = [os.path.join(workdir, f'sweep_results.{ext}')
           for ext in ('csv', 'md')] + [results_path(workdir)]
  columns = list(dict.fromkeys(c for row in rows for c in row))
  with open(paths[0], 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
  failed = [r['member'] + ' (' + r['status'] + ')' for r in rows
            if r['status'] != 'ok']
  with open(paths[1], 'w') as f:
    f.write(f'# Sweep: {len(rows)} members, step {num_train_steps}\n\n')
    if failed:
      f.write('Failed (non-finite loss; frozen and left out of the summary): '
              + ', '.join(failed) + '\n\n')
    f.write('## Mean ± std over seeds\n\n' + markdown_table(summary) + '\n\n')
    f.write('## Members (final logging interval)\n\n' + markdown_table(rows) +
            '\n')
  with open(paths[2], 'w') as f:
    json.dump(json_safe({'members': rows, 'summary': summary}), f, indent=2)
  metric = plot_metric_name
  plot_path = os.path.join(workdir, f'sweep_{metric.replace("/", "_")}.png')
  if plot_metric(plot_path, rows, swept, metric):
    paths.append(plot_path)
  return paths
