r"""A seeds sweep against the same seeds run one after another, end to end.

  python -m benchmarks.sweep_end_to_end --members=2,4 --steps=1000 --rounds=3

What a user weighs: one `python -m bvae_jax.main` whose config trains seeds
0..M-1 in one process (a `sweep` block on configs/capacity.py), against a
shell loop of M runs of configs/capacity.py, `--config.seed=i
--config.data_seed=0` (with shared batches each sweep member equals that run
bit for bit: tests/test_sweep.py). Both are whole processes: start-up, data,
compilation, training, the final checkpoint and figures. The metric suite is
off in both (`eval_every_steps=0`, `sweep.evaluate=False`) because it costs
the same per model either way.

The sweep and the sequential runs alternate in rounds, so both see the same
drift of the machine's speed. Reported per M: wall seconds per round of each,
and the median of the rounds' ratios sequential / sweep (≥ 1: the sweep is not
slower than the shell loop). The last line printed is a JSON object.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

_MEMBERS = flags.DEFINE_list('members', ['2', '4'], 'Seeds per sweep.')
_STEPS = flags.DEFINE_integer('steps', 1000, 'Training steps of every model.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Rounds (sweep, then the loop).')
_DATASET = flags.DEFINE_string(
    'dataset', 'dsprites_procedural',
    'configs/capacity.py\'s dataset= argument (dsprites_procedural: drawn '
    'here, the same data on every machine).')
_LAYOUT = flags.DEFINE_string('member_layout', 'auto',
                              'config.sweep.member_layout of the sweep.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'bvae_jax.main\'s --cpu_devices (0: its default).')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# configs/capacity.py with a sweep block over seeds 0..members-1 and no grid.
_SWEEP_CONFIG = '''
import importlib.util

from bvae_jax import config_defaults


def get_config(arg):
  """`arg`: 'members=M,layout=L,dataset=D'."""
  args = dict(part.split('=') for part in arg.split(','))
  spec = importlib.util.spec_from_file_location('capacity', {capacity!r})
  capacity = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(capacity)
  config = capacity.get_config('dataset=' + args['dataset'])
  config.sweep = config_defaults.sweep_block(
      seeds=range(int(args['members'])), grid={{}},
      member_layout=args['layout'], evaluate=False)
  return config
'''


def _common_flags(steps: int) -> list[str]:
  """One checkpoint and one set of figures, at the end; no metric suite."""
  flags_ = [f'--config.num_train_steps={steps}',
            f'--config.checkpoint_every_steps={steps}',
            f'--config.figure_every_steps={steps}',
            '--config.eval_every_steps=0']
  if _CPU_DEVICES.value:
    flags_.append(f'--cpu_devices={_CPU_DEVICES.value}')
  return flags_


def _timed_run(args: list[str], workdir: str) -> float:
  """Wall seconds of `python -m bvae_jax.main args --workdir=workdir`."""
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  process = subprocess.Popen(
      [sys.executable, '-m', 'bvae_jax.main', *args, f'--workdir={workdir}'],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    _, stderr = process.communicate()
  finally:  # A benchmark stopped midway leaves no training run behind.
    if process.poll() is None:
      process.kill()
      process.wait()
  seconds = time.perf_counter() - start
  if process.returncode:
    raise RuntimeError(f'bvae_jax.main {" ".join(args)} exited with '
                       f'{process.returncode}:\n{stderr[-4000:]}')
  shutil.rmtree(workdir, ignore_errors=True)
  return seconds


def main(argv):
  del argv
  scratch = tempfile.mkdtemp(prefix='sweep_end_to_end_')
  sweep_config = os.path.join(scratch, 'seeds_sweep.py')
  with open(sweep_config, 'w') as f:
    f.write(_SWEEP_CONFIG.format(
        capacity=os.path.join(ROOT, 'configs', 'capacity.py')))
  common = _common_flags(_STEPS.value)
  workdir = os.path.join(scratch, 'workdir')
  results = {}
  try:
    for members in (int(m) for m in _MEMBERS.value):
      sweep_args = [f'--config={sweep_config}:members={members},'
                    f'layout={_LAYOUT.value},dataset={_DATASET.value}',
                    *common]
      solo_args = [[f'--config={os.path.join(ROOT, "configs", "capacity.py")}'
                    f':dataset={_DATASET.value}', f'--config.seed={seed}',
                    '--config.data_seed=0', *common]
                   for seed in range(members)]
      sweep_seconds, loop_seconds = [], []
      for round_ in range(_ROUNDS.value):
        sweep_seconds.append(_timed_run(sweep_args, workdir))
        loop_seconds.append(sum(_timed_run(args, workdir)
                                for args in solo_args))
        print(f'members={members} round {round_ + 1}: sweep '
              f'{sweep_seconds[-1]:.1f} s, one after another '
              f'{loop_seconds[-1]:.1f} s', flush=True)
      ratios = np.array(loop_seconds) / np.array(sweep_seconds)
      results[str(members)] = dict(
          sweep_seconds=[round(s, 1) for s in sweep_seconds],
          sequential_seconds=[round(s, 1) for s in loop_seconds],
          round_ratios=[round(float(r), 3) for r in ratios],
          median_ratio=round(float(np.median(ratios)), 3))
      print(f'members={members}: sequential / sweep = '
            f'{results[str(members)]["median_ratio"]} (median of rounds)',
            flush=True)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  print(json.dumps({'steps': _STEPS.value, 'rounds': _ROUNDS.value,
                    'dataset': _DATASET.value,
                    'member_layout': _LAYOUT.value, 'members': results}))


if __name__ == '__main__':
  app.run(main)
