"""The worker count of `-n auto` (tests/xdist_workers.py)."""

import sys

import pytest

import xdist_workers

GIB = xdist_workers.GIB


@pytest.mark.parametrize('cores, memory_gib, workers', [
    (2, 24, 2),  # CI: both cores.
    (8, 16, 2),  # A laptop: memory, not cores, decides.
    (16, 128, 16),  # A workstation: every core.
    (4, 4, 1),  # Less memory than one worker peaks at: still one.
    (4, None, 4),  # Memory unknown: cores.
    (None, 24, 1),  # Cores unknown (os.cpu_count() returned None): one.
])
def test_auto_workers_are_cores_capped_by_memory(cores, memory_gib, workers):
  memory = memory_gib * GIB if memory_gib else None
  assert xdist_workers.auto_workers(cores, memory) == workers


@pytest.mark.skipif(sys.platform != 'linux', reason='sysconf names differ')
def test_this_machine_memory_is_known_on_linux():
  assert xdist_workers.physical_memory_bytes() > GIB


def test_usable_cores_are_at_least_one():
  assert xdist_workers.usable_cores() >= 1
