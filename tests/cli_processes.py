"""Running bvae_jax's command line in child processes, for tests.

A child fixes its own device count at start-up, and an abort inside XLA (a
deadlock's termination timeout, say) fails the test instead of killing pytest.
"""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_SECONDS = 300


def child_environment(users_xla_optimizations=False):
  """This environment without the test's forced device count (conftest).

  The children compile with the same options as the tests (conftest.py) and
  share their compilation cache; with `users_xla_optimizations`, with every
  XLA pass a user's run gets (conftest's `users_xla_optimizations`).
  """
  env = dict(os.environ)
  env['XLA_FLAGS'] = ' '.join(
      flag for flag in env.get('XLA_FLAGS', '').split()
      if not flag.startswith('--xla_force_host_platform_device_count'))
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  env['JAX_DISABLE_MOST_OPTIMIZATIONS'] = (
      'false' if users_xla_optimizations else 'true')
  env['JAX_COMPILATION_CACHE_DIR'] = os.path.join(
      os.environ.get('TMPDIR', '/tmp'), 'bvae_jax_test_compilation_cache')
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  return env


def run(command, timeout=TIMEOUT_SECONDS, users_xla_optimizations=False):
  """Runs `command` in the repository; fails the test unless it exits 0.

  Args:
    command: the argv.
    timeout: seconds.
    users_xla_optimizations: compile with every XLA pass, as users' runs do
      (child_environment).
  """
  try:
    result = subprocess.run(command, cwd=REPO,
                            env=child_environment(users_xla_optimizations),
                            capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired as error:
    stderr = (error.stderr or b'')
    stderr = stderr.decode(errors='replace') if isinstance(stderr, bytes) else stderr
    raise AssertionError(f'{" ".join(command)} did not finish in {timeout} s:'
                         f'\n{stderr[-6000:]}') from None
  assert result.returncode == 0, (
      f'{" ".join(command)} failed (exit {result.returncode}):\n'
      f'{result.stdout[-3000:]}\n{result.stderr[-6000:]}')
  return result
