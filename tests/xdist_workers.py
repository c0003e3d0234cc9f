"""How many pytest-xdist workers `-n auto` starts (tests/conftest.py's hook).

One per core, but no more than memory holds: one worker of this suite peaks
at ~5.3 GiB (measured on the 2-core CI-sized VM; docs/benchmarks.md, "Test
suite"), so a laptop with 8 cores and 16 GiB gets 2 workers, not 8.
"""

import os

GIB = 1024**3
# Per worker: the measured ~5.3 GiB peak plus headroom for the children that
# the command-line tests start.
BYTES_PER_WORKER = 6 * GIB


def usable_cores():
  """The cores this process may run on (its affinity), or None if unknown."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count()


def physical_memory_bytes():
  """This machine's memory, or None where sysconf cannot tell."""
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError, AttributeError):
    return None


def auto_workers(cpu_count, memory_bytes):
  """Workers for `-n auto`: min(cores, memory / 6 GiB), at least 1."""
  workers = cpu_count or 1
  if memory_bytes:
    workers = min(workers, memory_bytes // BYTES_PER_WORKER)
  return max(1, int(workers))
