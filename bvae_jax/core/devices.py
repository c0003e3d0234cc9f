"""Device setup: how many host (CPU) devices to create, and the data mesh.

XLA:CPU runs each device's computation as one sequence of ops on one thread,
so a single CPU device leaves the other cores idle. Splitting the host into
several JAX devices and running the train step data-parallel over them puts
every core to work. Two devices per core beat one (1.3-1.4× on the 2-core
VM, docs/benchmarks.md "Issue 12"): a profile of one device per core shows a
core idle ~20% of the step, whenever its device waits for the all-reduce or
runs a memory-bound copy; a second device per core fills those gaps. Four per
core lose again (smaller matrix products, more all-reduce). The device count
must be fixed before JAX creates its CPU backend, which is why
`configure_host_devices` is called first thing in main.
"""

import os

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Name of the mesh axis that the batch is split over.
DATA_AXIS = 'data'
_XLA_DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'


def available_cores() -> int:
  """CPU cores this process may run on (respects taskset / cgroup affinity)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


# Host devices per core when --cpu_devices is 0 (see the module docstring).
DEVICES_PER_CORE = 2


def default_host_device_count(batch_size: int, cores: int) -> int:
  """The largest count ≤ DEVICES_PER_CORE · `cores` dividing `batch_size`."""
  most = DEVICES_PER_CORE * max(cores, 1)
  return max(n for n in range(1, most + 1) if batch_size % n == 0)


def configure_host_devices(requested: int, batch_size: int) -> int | None:
  """Sets the number of JAX CPU devices; call before any JAX computation.

  Args:
    requested: devices wanted; 0 picks `default_host_device_count` for this
      machine's cores; negative leaves JAX's setting alone.
    batch_size: the global batch size, so the automatic choice divides it.

  Returns:
    The device count set, or None when left to JAX (negative `requested`, or
    XLA_FLAGS already forcing a count, which then wins).
  """
  if requested < 0:
    return None
  if _XLA_DEVICE_COUNT_FLAG in os.environ.get('XLA_FLAGS', ''):
    logging.info('XLA_FLAGS sets the host device count; --cpu_devices ignored.')
    return None
  count = requested or default_host_device_count(batch_size, available_cores())
  jax.config.update('jax_num_cpu_devices', count)
  logging.info('Using %d host (CPU) devices on %d cores (%s).', count,
               available_cores(),
               '--cpu_devices' if requested else
               f'default: up to {DEVICES_PER_CORE} per core dividing the batch')
  return count


def create_mesh() -> Mesh:
  """A 1-D mesh over all devices (of all processes) along the data axis.

  The axis is `Auto`: XLA's sharding propagation places the intermediate
  arrays, so model code (reshapes in the convolution layers) stays free of
  sharding annotations. With `Explicit` axes every reshape of the sharded
  batch would need an `out_sharding`.
  """
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of arrays copied whole onto every device (parameters, state)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) axis over the data axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_divisible(batch_size: int, num_devices: int) -> None:
  """Raises ValueError unless the global batch splits evenly over devices."""
  if batch_size % num_devices:
    raise ValueError(
        f'config.batch_size={batch_size} is not divisible by the number of '
        f'devices ({num_devices}); choose a multiple of {num_devices} or change '
        'the device count (--cpu_devices on CPU).')
