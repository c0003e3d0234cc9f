"""Test-wide setup: two host devices, so every training test runs data-parallel.

Set before JAX creates its CPU backend (conftest is imported before the tests).
A caller's own XLA_FLAGS device count wins.
"""

import os

if '--xla_force_host_platform_device_count' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_force_host_platform_device_count=2').strip()

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

# Tests compile the same small programs many times (every train_and_evaluate
# call jits its step anew); a session-wide persistent cache turns the repeats
# into cache hits, and skipping XLA's heavy optimisation passes makes the first
# compile of each cheaper. Neither changes what the tests check.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(os.environ.get('TMPDIR', '/tmp'),
                               'bvae_jax_test_compilation_cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
jax.config.update('jax_disable_most_optimizations', True)


def pytest_xdist_auto_num_workers(config):
  """`-n auto` (pyproject.toml's addopts): cores, capped by memory.

  PYTEST_XDIST_AUTO_NUM_WORKERS, where set, still wins: returning None hands
  the decision to xdist's own hook, which reads it.
  """
  del config  # The machine decides, not the command line.
  if os.environ.get('PYTEST_XDIST_AUTO_NUM_WORKERS'):
    return None
  import xdist_workers  # pylint: disable=g-import-not-at-top
  return xdist_workers.auto_workers(xdist_workers.usable_cores(),
                                    xdist_workers.physical_memory_bytes())


@pytest.fixture
def users_xla_optimizations():
  """XLA's full optimisation passes for one test, as users' runs compile.

  The suite compiles with most passes off (above) to compile faster; tests
  whose claim is that two different programs give bit-identical numbers
  must hold with the passes users get, so they take this fixture. Caches are
  cleared on both sides so that no executable compiled under the other
  setting is reused.
  """
  jax.clear_caches()
  jax.config.update('jax_disable_most_optimizations', False)
  try:
    yield
  finally:
    jax.clear_caches()
    jax.config.update('jax_disable_most_optimizations', True)


@pytest.fixture(scope='module')
def tiny_data_dir(tmp_path_factory):
  """A TFDS data dir with `dsprites_procedural/tiny` prepared, once per test
  module, before any child process of the module reads it (so none race to
  prepare it)."""
  import configs.capacity  # pylint: disable=g-import-not-at-top
  from tiny_configs import open_configured  # pylint: disable=g-import-not-at-top
  directory = str(tmp_path_factory.mktemp('tfds'))
  config = configs.capacity.get_config()
  config.dataset = 'dsprites_procedural/tiny'
  config.data_dir = directory
  open_configured(config)
  return directory
