"""The benchmark commands that docs/benchmarks.md quotes still run.

They build their steps from the configs as runs do (benchmarks/steps.py); a
change to the configs once left every step benchmark failing before its first
step (num_channels unresolved), with no test to say so. These run each at a
token length and check the JSON they print, not their speed.
"""

import os

import pytest

from benchmarks import child_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(module, *flags):
  return child_process.json_result(module, *flags, cwd=ROOT, timeout=600)


@pytest.mark.slow
def test_sweep_benchmark_times_every_layout_it_is_asked_for():
  result = run_benchmark('benchmarks.sweep', '--members=2', '--seconds=0.4',
                         '--rounds=2', '--cpu_devices=2',
                         '--member_layouts=vmap,map,loop')
  assert set(result['layouts']) == {
      'single', 'sweep(mesh=2x1,shared batches,vmap)',
      'sweep(mesh=2x1,shared batches,map)',
      'sweep(mesh=1x2,shared batches,loop)'}
  # XLA:CPU, two members on two member groups: one member per group.
  assert result['default_member_layout'] == 'loop'
  for name, layout in result['layouts'].items():
    assert layout['member_images_per_sec'] > 0, name
    assert len(layout['round_ratios']) == 2, name
  assert result['layouts']['single']['round_ratios'] == [1.0, 1.0]


@pytest.mark.slow
def test_member_freeze_benchmark_times_the_solo_step_and_three_freezes():
  result = run_benchmark('benchmarks.member_freeze', '--seconds=0.4',
                         '--rounds=2')
  assert set(result['variants']) == {'solo', 'cond', 'where', 'none'}
  assert result['variants']['solo']['median_round_ratio'] == 1.0
  for name, variant in result['variants'].items():
    assert variant['images_per_sec'] > 0, name


@pytest.mark.slow
def test_end_to_end_sweep_benchmark_times_the_sweep_and_the_shell_loop():
  result = run_benchmark('benchmarks.sweep_end_to_end', '--members=2',
                         '--steps=10', '--rounds=1',
                         '--dataset=dsprites_procedural/tiny')
  timing = result['members']['2']
  assert len(timing['sweep_seconds']) == len(timing['sequential_seconds']) == 1
  assert timing['sweep_seconds'][0] > 0 and timing['sequential_seconds'][0] > 0
  assert timing['median_ratio'] == timing['round_ratios'][0] > 0
