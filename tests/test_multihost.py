"""When a process joins a multi-process job (jax.distributed), and bad input."""

import pytest

from bvae_jax.core import multihost


@pytest.mark.parametrize('mode, address, environ, expected', [
    ('auto', None, {}, False),  # A laptop: never waits for a coordinator.
    ('auto', '10.0.0.1:1234', {}, True),
    ('auto', None, {'JAX_COORDINATOR_ADDRESS': 'h:1'}, True),
    ('auto', None, {'SLURM_NTASKS': '4', 'SLURM_PROCID': '1'}, True),
    ('auto', None, {'SLURM_NTASKS': '1', 'SLURM_PROCID': '0'}, False),
    ('auto', None, {'SLURM_NTASKS': '4'}, False),  # sbatch shell, not srun.
    ('on', None, {}, True),  # Cloud TPU pod slices: JAX detects the rest.
    ('off', '10.0.0.1:1234', {'SLURM_NTASKS': '4', 'SLURM_PROCID': '1'}, False),
])
def test_should_initialize(mode, address, environ, expected):
  assert multihost.should_initialize(mode, address, environ) is expected


def test_bad_mode_and_process_id_are_named():
  with pytest.raises(ValueError, match='--distributed'):
    multihost.should_initialize('sometimes', None, {})
  with pytest.raises(ValueError, match=r'--process_id=2 must be in \[0, '
                     r'--num_processes=2\)'):
    multihost.initialize('on', '127.0.0.1:1', num_processes=2, process_id=2)


def test_bad_environment_value_is_named(monkeypatch):
  monkeypatch.setenv('JAX_NUM_PROCESSES', 'two')
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two'"):
    multihost.initialize('on', '127.0.0.1:1', process_id=0)
