"""Runs a benchmark module in a child process and reads its JSON result.

JAX fixes the CPU device count when it starts, so the benchmarks that compare
device counts run one child per count; each child prints its result as the
last line of its output, a JSON object.
"""

import json
import subprocess
import sys


def parse_result(stdout: str):
  """The JSON object a benchmark prints as its last line."""
  return json.loads(stdout.strip().splitlines()[-1])


def json_result(module: str, *flags: str, **run_options):
  """Runs `python -m module flags...` and returns its last line, parsed.

  Args:
    module: the benchmark module.
    *flags: its command-line flags.
    **run_options: for subprocess.run (env, cwd, timeout).

  Raises:
    subprocess.CalledProcessError: the child failed (its stderr attached).
  """
  output = subprocess.run([sys.executable, '-m', module, *flags], check=True,
                          capture_output=True, text=True,
                          **run_options).stdout
  return parse_result(output)
