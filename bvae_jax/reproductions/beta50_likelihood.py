r"""The β-sweep report's β = 50 under two likelihoods: does it collapse?

The report (Mir 2024) finds that its β = 50 collapses; our β sweep, with a
Bernoulli decoder, kept three latents at β = 50 and had its best MIG there
(docs/reproductions.md). The report's loss is probably a summed squared
error. configs/sweep_beta.py:beta=50,likelihood=gaussian trains β = 50 with a
Gaussian decoder of σ = 1/√2, whose reconstruction term is the summed squared
error plus a constant, and `:beta=50` the Bernoulli one, 3 seeds each. This
module reads the finished sweeps and writes, to --out:

  likelihood.json  per sweep: its likelihood and β, and per seed the final
                   KL and information (total and per latent, the mean of the
                   last FINAL_INTERVALS log intervals), the informative
                   latents (information ≥ capacity_diagnostics.
                   INFORMATIVE_KL_NATS), the reconstruction term, whether the
                   posterior collapsed (no informative latent: the report's
                   sense, not the capacity objective's collapse rule of
                   capacity_diagnostics.is_collapsed, where the KL is large
                   but carries no information), and the sweep's
                   end-of-training metrics (sweep_results.json)
  likelihood.md    sweeps × seeds: posterior collapsed, informative latents, KL,
                   information, reconstruction, MIG, β-VAE score, modularity;
                   then per sweep (a likelihood and a β) the collapsed seeds
                   and each metric's mean ± sd over seeds beside the report's
                   Table 1 at that β (beta_sweep_study.STUDY_TABLE), which
                   is how the report's table is compared under its likely
                   loss: configs/sweep_beta.py:beta=B,likelihood=gaussian for
                   B in 5, 10, 50

  python -m bvae_jax.reproductions.beta50_likelihood \
      --sweeps=/tmp/beta50_gaussian,/tmp/beta50_bernoulli \
      --out=docs/results/beta50_likelihood

A sweep whose workdir is gone is read from its published members
(`--mode=publish --member`, folders <name>_s<seed>: history.json and
metrics.json hold the same values):

  python -m bvae_jax.reproductions.beta50_likelihood \
      --sweeps=/tmp/beta50_bernoulli --published=docs/results/beta50_likelihood \
      --out=docs/results/beta50_likelihood

The reconstruction terms of the two likelihoods are different quantities
(nats of a Gaussian with fixed σ against nats of a Bernoulli), so the table
compares each likelihood's seeds with each other, not across.
"""

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.evaluation import study_results
from bvae_jax.reproductions import beta_sweep_study
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report

# Log intervals averaged for the final state (the last 500 steps at the
# config's 100-step interval).
FINAL_INTERVALS = 5
# The end-of-training metrics the table shows (sweep_results.json columns).
TABLE_METRICS = (('MIG', 'mig.discrete_mig'),
                 ('β-VAE score', 'beta_vae.eval_accuracy'),
                 ('modularity', 'modularity_explicitness.modularity_score'))


def history_summary(history: dict[str, Any], where: str) -> dict[str, Any]:
  """A member's final KL, information, reconstruction and collapse, the means
  of its last FINAL_INTERVALS log intervals.

  Args:
    history: `study_results.training_history`'s dict (history.json's).
    where: the member's folder, for the error.

  Raises:
    ValueError: the member logged no per-latent information (trained before
      it was logged), naming `where`.
  """
  if 'information_per_latent' not in history:
    raise ValueError(f'{where} logged no `information_per_latent`: '
                     'retrain it with this version')
  last = slice(-FINAL_INTERVALS, None)

  def mean(name):
    return np.mean(np.asarray(history[name][last], dtype=float), axis=0)

  information = mean('information_per_latent')
  informative = capacity_diagnostics.informative_latents(information)
  return {
      'final_step': history['step'][-1],
      'kl_total': float(mean('kl_total')),
      'information': float(mean('information')),
      'kl_per_latent': [float(v) for v in mean('kl_per_latent')],
      'information_per_latent': [float(v) for v in information],
      'informative_latents': [int(i) for i in np.flatnonzero(informative)],
      'reconstruction': float(mean('reconstruction')),
      'posterior_collapsed': not informative.any(),
  }


def member_summary(member_dir: str) -> dict[str, Any]:
  """`history_summary` of a sweep member's folder (its event files)."""
  return history_summary(study_results.training_history(member_dir),
                         member_dir)


def published_member_summary(results_dir: str) -> dict[str, Any]:
  """`history_summary` and the metrics of a member published with
  `--mode=publish --member` (its results folder: history.json, metrics.json),
  for when the sweep's workdir is gone."""
  with open(os.path.join(results_dir, 'history.json')) as f:
    summary = history_summary(json.load(f), results_dir)
  with open(os.path.join(results_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  final = metrics[max(metrics, key=int)]['metrics']
  summary['metrics'] = {
      key: final.get(key.split('.')[0], {}).get(key.split('.')[1])
      for _, key in TABLE_METRICS}
  summary['status'] = 'ok'  # publish refuses a failed member.
  return summary


def _sweep_entry(config: dict[str, Any], betas, members: dict[str, Any]
                 ) -> dict[str, Any]:
  """One sweep's entry of the report, from its config and member summaries."""
  return {
      'likelihood': config['likelihood'],
      'gaussian_stddev': (config.get('gaussian_stddev')
                          if config['likelihood'] == 'gaussian' else None),
      'betas': sorted(set(betas)),
      'num_train_steps': config['num_train_steps'],
      'members': members,
      'num_posterior_collapsed': int(sum(m['posterior_collapsed']
                                         for m in members.values())),
  }


def published_sweep_summary(results_dirs: Sequence[str]) -> dict[str, Any]:
  """`sweep_summary` from the published members of one sweep."""
  members, config = {}, None
  for results_dir in results_dirs:
    with open(os.path.join(results_dir, 'run.json')) as f:
      run = json.load(f)
    if 'sweep' not in run:
      raise ValueError(f'{results_dir}/run.json names no sweep member: '
                       'publish it with --mode=publish --member')
    with open(os.path.join(results_dir, 'config.json')) as f:
      config = json.load(f)
    members[run['sweep']['member']] = published_member_summary(results_dir)
  return _sweep_entry(config, [config['beta']], members)


def sweep_summary(sweep_dir: str) -> dict[str, Any]:
  """Every member of one β = 50 sweep, with its likelihood and metrics."""
  with open(os.path.join(sweep_dir, 'config.json')) as f:
    config = json.load(f)
  results_path = os.path.join(sweep_dir, 'sweep_results.json')
  if not os.path.exists(results_path):
    raise FileNotFoundError(f'{results_path} is missing: the sweep has not '
                            'finished')
  with open(results_path) as f:
    rows = {row['member']: row for row in json.load(f)['members']}
  members = {}
  for name in rows:  # The sweep's member order.
    summary = member_summary(os.path.join(sweep_dir, sweep.MEMBERS_DIR, name))
    summary['metrics'] = {key: rows[name].get(key)
                          for _, key in TABLE_METRICS}
    summary['status'] = rows[name].get('status')
    members[name] = summary
  return _sweep_entry(config, [row.get('beta') for row in rows.values()],
                      members)


def _study_value(value: float) -> str:
  """The report's Table 1 entry as it prints it (its collapsed β's Z-diff
  is nan)."""
  if np.isnan(value) or value == 0:
    return f'{value:g}'
  return f'{value:.4f}'.lstrip('0')


def setting_table(sweeps: dict[str, dict[str, Any]]) -> list[str]:
  """Markdown rows: per sweep, ordered by likelihood then β, the collapsed
  seeds and each metric's mean ± sd over its seeds, beside the report's
  Table 1 values (MIG / Z-diff / modularity) at that β."""
  lines = ['| likelihood | β | seeds | posterior collapsed | ' +
           ' | '.join(label for label, _ in TABLE_METRICS) +
           ' | report (Mir 2024): MIG / Z-diff / modularity |',
           '|---' * (5 + len(TABLE_METRICS)) + '|']
  entries = sorted(sweeps.values(),
                   key=lambda e: (e['likelihood'], tuple(e['betas'])))
  for entry in entries:
    betas = ', '.join(f'{b:g}' for b in entry['betas'])
    metrics = ' | '.join(
        sweep_report.format_mean_std(sweep_report.mean_std(
            [m['metrics'][key] for m in entry['members'].values()]))
        for _, key in TABLE_METRICS)
    study = (beta_sweep_study.STUDY_TABLE.get(float(entry['betas'][0]))
             if len(entry['betas']) == 1 else None)
    study_text = (' / '.join(_study_value(v) for v in study) if study
                  else '—')
    lines.append(f"| {entry['likelihood']} | {betas} | "
                 f"{len(entry['members'])} | "
                 f"{entry['num_posterior_collapsed']} | {metrics} | "
                 f'{study_text} |')
  return lines


def markdown(sweeps: dict[str, dict[str, Any]]) -> str:
  """Sweeps × seeds: collapse, informative latents, KL, information, NLL,
  metrics; then each sweep's collapsed count; then `setting_table`."""
  lines = ['| sweep | likelihood | member | posterior collapsed | '
           'informative latents | '
           'KL (nats) | information (nats) | reconstruction | ' +
           ' | '.join(label for label, _ in TABLE_METRICS) + ' |',
           '|---' * (8 + len(TABLE_METRICS)) + '|']
  for sweep_name, entry in sweeps.items():
    for name, member in entry['members'].items():
      metrics = ' | '.join(
          '—' if member['metrics'][key] is None else
          f"{member['metrics'][key]:.3f}" for _, key in TABLE_METRICS)
      latents = ', '.join(f'z{i}' for i in member['informative_latents'])
      lines.append(
          f"| {sweep_name} | {entry['likelihood']} | {name} | "
          f"{'yes' if member['posterior_collapsed'] else 'no'} | "
          f"{len(member['informative_latents'])}"
          f"{f' ({latents})' if latents else ''} | "
          f"{member['kl_total']:.2f} | {member['information']:.2f} | "
          f"{member['reconstruction']:.1f} | {metrics} |")
  lines.append('')
  for sweep_name, entry in sweeps.items():
    lines.append(f"- {sweep_name} ({entry['likelihood']}): "
                 f"{entry['num_posterior_collapsed']} of "
                 f"{len(entry['members'])} seeds with a collapsed posterior "
                 '(no latent with information ≥ '
                 f'{capacity_diagnostics.INFORMATIVE_KL_NATS:g} nats).')
  lines += ['', 'Per likelihood and β (mean ± sd over seeds; the report, one '
            'seed, has a sum of squared errors as its likely loss):', '']
  lines += setting_table(sweeps)
  return '\n'.join(lines) + '\n'


def published_groups(root: str) -> dict[str, list[str]]:
  """{sweep name: its members' folders} of the folders `<name>_s<seed>` in
  `root` (as `--mode=publish --member` wrote them), seeds in order."""
  groups: dict[str, list[tuple[int, str]]] = {}
  for entry in sorted(os.listdir(root)):
    name, _, seed = entry.rpartition('_s')
    path = os.path.join(root, entry)
    if name and seed.isdigit() and os.path.isfile(os.path.join(path,
                                                               'run.json')):
      groups.setdefault(name, []).append((int(seed), path))
  return {name: [path for _, path in sorted(members)]
          for name, members in groups.items()}


def write_report(sweep_dirs: Sequence[str], out_dir: str,
                 published_root: str | None = None
                 ) -> dict[str, dict[str, Any]]:
  """Writes likelihood.json and .md for the sweeps (named by folder), and
  for the published members' sweeps in `published_root` that `sweep_dirs`
  do not name (a sweep's workdir, where given, is read instead)."""
  workdirs = {os.path.basename(os.path.normpath(d)): d for d in sweep_dirs}
  groups = published_groups(published_root) if published_root else {}
  names = list(workdirs) + [name for name in groups if name not in workdirs]

  def summarise(name):
    if name in workdirs:
      return sweep_summary(workdirs[name])
    return published_sweep_summary(groups[name])

  return sweep_report.write_sweep_summaries(names, out_dir, 'likelihood',
                                            summarise, markdown)


FLAGS = flags.FLAGS


def main(argv):
  del argv
  print(markdown(write_report(FLAGS.sweeps or [], FLAGS.out,
                              FLAGS.published)))


if __name__ == '__main__':
  # Defined here, not on import: collapse_rate.py defines the same names, and
  # both modules are imported into one process by the tests.
  flags.DEFINE_list('sweeps', None,
                    'Workdirs of configs/sweep_beta.py:beta=50[,likelihood=…] '
                    'sweeps.')
  flags.DEFINE_string('out', None, 'Folder for likelihood.json and .md.')
  flags.DEFINE_string('published', None,
                      'Also the sweeps whose members were published there '
                      '(folders <name>_s<seed>), e.g. '
                      'docs/results/beta50_likelihood, where --sweeps does '
                      'not name their workdir.')
  flags.mark_flags_as_required(['out'])
  app.run(main)
