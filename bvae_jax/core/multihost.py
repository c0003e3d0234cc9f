"""Joining a multi-process JAX job (`jax.distributed.initialize`) when there is one.

One bvae_jax process runs per host (TPU VM worker), per GPU or per node
(SLURM), or per group of CPU devices (local runs, the tests). Every process
runs the same program; JAX's collectives join their devices into one mesh.

When to initialise (`--distributed`):
  * 'on': always. `jax.distributed.initialize()` fills in what is not given
    from the cluster: Cloud TPU VMs and pod slices, SLURM (`srun`), Open MPI,
    Kubernetes (JAX's cluster detection).
  * 'auto' (default): when a coordinator address is given (flag or
    JAX_COORDINATOR_ADDRESS), or under `srun` with more than one task
    (SLURM_NTASKS > 1). A single-process run is left alone, so a laptop never
    waits for a coordinator.
  * 'off': never.

The coordinator, process count and process id come from the flags, else from
the environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID, else from the cluster.
"""

import os

from absl import logging
import jax

DISTRIBUTED_MODES = ('auto', 'on', 'off')


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ''):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f'Environment variable {name}={value!r} is not an '
                     'integer.') from None


def should_initialize(mode: str, coordinator_address: str | None,
                      environ=None) -> bool:
  """Whether this process joins a multi-process job (see module docstring)."""
  if mode not in DISTRIBUTED_MODES:
    raise ValueError(f'--distributed must be one of {DISTRIBUTED_MODES}, got '
                     f'{mode!r}')
  environ = os.environ if environ is None else environ
  if mode != 'auto':
    return mode == 'on'
  if coordinator_address or environ.get('JAX_COORDINATOR_ADDRESS'):
    return True
  try:
    return int(environ.get('SLURM_NTASKS', '1')) > 1 and (
        'SLURM_PROCID' in environ)
  except ValueError:
    return False


def initialize(mode: str = 'auto', coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` when the job is multi-process.

  Must run before any JAX computation (after setting the CPU device count).

  Args:
    mode: 'auto', 'on' or 'off' (module docstring).
    coordinator_address: 'host:port' of process 0's coordinator service.
    num_processes: processes in the job.
    process_id: this process's index in [0, num_processes).

  Returns:
    Whether the distributed runtime was initialised.

  Raises:
    ValueError: on a bad mode or environment value, or an inconsistent
      process id / count.
  """
  if not should_initialize(mode, coordinator_address):
    return False
  num_processes = (num_processes if num_processes is not None
                   else _env_int('JAX_NUM_PROCESSES'))
  process_id = (process_id if process_id is not None
                else _env_int('JAX_PROCESS_ID'))
  if (num_processes is not None and process_id is not None and
      not 0 <= process_id < num_processes):
    raise ValueError(f'--process_id={process_id} must be in [0, '
                     f'--num_processes={num_processes})')
  # Gloo runs the collectives of multi-process CPU jobs. It is JAX 0.10's
  # default; set explicitly so that a changed default cannot leave a CPU job
  # without cross-process collectives.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)
  logging.info('Joined a %d-process job as process %d (%d local devices).',
               jax.process_count(), jax.process_index(),
               jax.local_device_count())
  return True
