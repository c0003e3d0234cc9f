"""`python -m bvae_jax.main --mode=merge` and `--mode=udr`, run as a user runs
them: two seed shards of configs/sweep_beta.py trained from the command line,
merged into one sweep, and that sweep's members scored by UDR.

What a merge and UDR compute is tested on the library functions
(tests/test_sweep_merge.py, tests/test_udr_selection.py); here, that the one
entry point runs them from a config file with the flags the docs give.
"""

import json
import os
import subprocess
import sys

import pytest

from cli_processes import REPO, child_environment, run

pytestmark = pytest.mark.slow

BETAS = (1.0, 4.0)


def sweep_flags(data_dir, workdir, *extra):
  """configs/sweep_beta.py:quick at test size: 2 β, 2 steps of batch 4."""
  return ['-m', 'bvae_jax.main', '--config=configs/sweep_beta.py:quick',
          f'--workdir={workdir}', '--cpu_devices=1',
          '--config.dataset=dsprites_procedural/tiny',
          f'--config.data_dir={data_dir}', f'--config.sweep.grid.beta={BETAS}',
          '--config.train_subset_size=1000', '--config.batch_size=4',
          '--config.num_train_steps=2',
          '--config.checkpoint_every_steps=2', '--config.log_every_steps=1',
          '--config.figure_every_steps=2', '--config.sweep.evaluate=False',
          *extra]


def test_merge_then_udr_from_the_command_line(tiny_data_dir, tmp_path):
  parts = []
  for seed in (0, 1):
    part = str(tmp_path / f'seed{seed}')
    run([sys.executable, *sweep_flags(tiny_data_dir, part,
                                      f'--config.sweep.seeds=({seed},)')])
    parts.append(part)
  merged = str(tmp_path / 'all')
  # The whole sweep's config (seeds 0 and 1), as the docs' command gives it.
  whole = sweep_flags(tiny_data_dir, merged, '--config.sweep.seeds=(0, 1)')

  result = run([sys.executable, *whole, '--mode=merge',
                f'--parts={",".join(parts)}'])
  assert f'4 members merged into {merged}' in result.stderr
  with open(os.path.join(merged, 'merged_from.json')) as f:
    assert [p['seeds'] for p in json.load(f)['parts']] == [[0], [1]]
  assert not os.path.exists(os.path.join(merged, '.lock'))

  run([sys.executable, *whole, '--mode=udr', '--udr_num_points=100'])
  with open(os.path.join(merged, 'udr.json')) as f:
    summary = json.load(f)
  with open(os.path.join(merged, 'sweep_members.json')) as f:
    names = [m['name'] for m in json.load(f)]
  assert sorted(summary['members']) == sorted(names) and len(names) == 4
  assert summary['num_points'] == 100 and summary['step'] == 2
  # Each β's two seeds are scored against each other.
  assert sorted(summary['settings']) == [f'beta={b:g}' for b in BETAS]


def test_merge_without_parts_is_refused(tiny_data_dir, tmp_path):
  result = subprocess.run(
      [sys.executable, *sweep_flags(tiny_data_dir, tmp_path / 'all'),
       '--mode=merge'], cwd=REPO, env=child_environment(), capture_output=True,
      text=True, timeout=240)
  assert result.returncode == 1
  assert '--mode=merge needs --parts' in result.stderr
  assert not (tmp_path / 'all').exists()
