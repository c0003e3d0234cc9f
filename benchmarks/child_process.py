"""Runs a benchmark module in a child process and reads its JSON result.

JAX fixes the CPU device count when it starts, so the benchmarks that compare
device counts run one child per count; each child prints its result as the
last line of its output, a JSON object.
"""

import json
import subprocess
import sys


def json_result(module: str, *flags: str, env=None):
  """Runs `python -m module flags...` and returns its last line, parsed.

  Raises:
    subprocess.CalledProcessError: the child failed (its stderr attached).
  """
  output = subprocess.run([sys.executable, '-m', module, *flags], env=env,
                          check=True, capture_output=True, text=True).stdout
  return json.loads(output.strip().splitlines()[-1])
