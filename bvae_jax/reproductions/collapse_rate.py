r"""How often the capacity objective's encoder collapses, per setting, from trained sweeps.

configs/collapse_rate.py trains one 8-seed sweep per setting of γ and the C
ramp. This module reads each sweep's members' logged `kl_total` and
`information` (the Gaussian bound on I(x; z), objectives/elbo.py) and calls a
member collapsed when, averaged over its last FINAL_INTERVALS log intervals,
the KL is at least capacity_diagnostics.COLLAPSE_MIN_KL_NATS and under
COLLAPSE_INPUT_SHARE of it is information: the rule of the training log's
warning. It writes, to --out:

  collapse_rate.json  per setting: each member's final KL, information,
                      reconstruction, whether it collapsed, and the first
                      step the warning's rule held; the collapse rate
  collapse_rate.md    settings × (seeds, collapsed, rate, information, NLL)

  python -m bvae_jax.reproductions.collapse_rate \
      --sweeps=/tmp/collapse/g1000_r40000,/tmp/collapse/g100_r40000 \
      --out=docs/results/collapse_rate
"""

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report

# Log intervals averaged for the final state (the last 250 steps at the
# config's 50-step interval).
FINAL_INTERVALS = 5


def member_summary(member_dir: str) -> dict[str, Any]:
  """One member's final KL, information, NLL and collapse, from its events.

  Raises:
    ValueError: the member logged no `information` (trained before it was
      logged), naming the directory.
  """
  scalars = metric_logging.read_scalars(member_dir)
  if 'information' not in scalars:
    raise ValueError(f'{member_dir} logged no `information`: retrain it with '
                     'this version')
  steps = sorted(scalars['information'])
  kl = np.array([scalars['kl_total'][s] for s in steps])
  information = np.array([scalars['information'][s] for s in steps])
  last = slice(-FINAL_INTERVALS, None)
  collapsed_at = [s for s, k, i in zip(steps, kl, information)
                  if capacity_diagnostics.is_collapsed(k, i)]
  final_kl, final_information = float(kl[last].mean()), float(
      information[last].mean())
  return {
      'final_step': steps[-1],
      'kl_total': final_kl, 'information': final_information,
      'reconstruction': float(np.mean(
          [scalars['reconstruction'][s] for s in steps[last]])),
      'collapsed': capacity_diagnostics.is_collapsed(final_kl,
                                                   final_information),
      'first_collapsed_step': collapsed_at[0] if collapsed_at else None,
  }


def setting_summary(sweep_dir: str) -> dict[str, Any]:
  """Every member of one sweep, its config's γ and ramp, and the rate."""
  with open(os.path.join(sweep_dir, 'config.json')) as f:
    config = json.load(f)
  members_root = os.path.join(sweep_dir, sweep.MEMBERS_DIR)
  members = {name: member_summary(os.path.join(members_root, name))
             for name in sorted(os.listdir(members_root))
             if os.path.isdir(os.path.join(members_root, name))}
  if not members:
    raise ValueError(f'{members_root} holds no member')
  collapsed = [m['collapsed'] for m in members.values()]
  return {
      'gamma': config['gamma'], 'ramp_steps': config['capacity_anneal_steps'],
      'capacity_start': config['capacity_start'],
      'members': members, 'num_collapsed': int(sum(collapsed)),
      'rate': float(np.mean(collapsed)),
      'information': sweep_report.mean_std(
          [m['information'] for m in members.values()]),
      'reconstruction': sweep_report.mean_std(
          [m['reconstruction'] for m in members.values()]),
  }


def markdown(settings: dict[str, dict[str, Any]]) -> str:
  """Settings × seeds, collapsed, rate, information and NLL (mean ± sd)."""
  lines = ['| setting | γ | C ramp (steps) | C start | seeds | collapsed | '
           'rate | information (nats) | reconstruction NLL |',
           '|---|---|---|---|---|---|---|---|---|']
  for name, entry in settings.items():
    info, nll = entry['information'], entry['reconstruction']
    lines.append(
        f"| {name} | {entry['gamma']:g} | {entry['ramp_steps']:,} | "
        f"{entry['capacity_start']:g} | {len(entry['members'])} | "
        f"{entry['num_collapsed']} | {entry['rate']:.2f} | "
        f"{info['mean']:.2f} ± {info['std'] or 0:.2f} | "
        f"{nll['mean']:.1f} ± {nll['std'] or 0:.1f} |")
  return '\n'.join(lines) + '\n'


def write_report(sweep_dirs: Sequence[str], out_dir: str
                 ) -> dict[str, dict[str, Any]]:
  """Writes collapse_rate.json and .md for the sweeps (named by folder)."""
  return sweep_report.write_sweep_summaries(sweep_dirs, out_dir,
                                            'collapse_rate', setting_summary,
                                            markdown)


FLAGS = flags.FLAGS
flags.DEFINE_list('sweeps', None, 'Workdirs of configs/collapse_rate.py sweeps.')
flags.DEFINE_string('out', None, 'Folder for collapse_rate.json and .md.')


def main(argv):
  del argv
  print(markdown(write_report(FLAGS.sweeps, FLAGS.out)))


if __name__ == '__main__':
  flags.mark_flags_as_required(['sweeps', 'out'])
  app.run(main)
