r"""Training data held in device memory, each batch gathered on the device.

On a GPU a training step of batch 64 takes about a millisecond, while the host
pipeline (input_pipeline.py) reads and decodes ~20k images/s on two cores: the
step would wait for its data. With `config.data_on_device` the training
records are read once, copied to every device, and each step sends only its B
record positions (int32); the device gathers the images from its copy.

The batches are exactly the host pipeline's, bit for bit:

* positions come from the same functions: `input_pipeline.training_records`
  (all records, or the fixed `train_subset_size` subset) and
  `batch_record_indices`, with `batch_order`'s seed, started at `start_step`;
* images are stored as uint8 with a scale when `uint8.astype(float32) * scale`
  gives the reader's float32 images back bit for bit (checked on the host for
  every record; dSprites is 0/1), else as float32; the device computes that
  same product.

Both host jobs are bound by one core's Python: reading and parsing records
(~10k images/s a core), and grain's shuffle (~30 µs a position, so ~2 ms a
step of 64 and ~30 ms a step of 1024, more than an accelerator's step). So on an
accelerator both run in worker processes (`default_workers`): records in
chunks, positions in chunks of steps (element j of `batch_record_indices` with
a batch of several steps is that many consecutive steps' batches), computed
ahead of the loop. On CPU, or with workers=0, one background thread does it.

Limits, each refused with a ValueError naming `data_on_device`:

* single-process jobs only for now (each process would need its own copy and
  its own rows of every batch);
* the copy must fit in half the free memory of each device, where
  `Device.memory_stats()` reports it, else (CPU) in the host's available
  memory.

A sweep (sweeps/sweep.py) with shared batches reads one such stream; one
whose members read their own batches reads one stream per member seed from
the same copy of the records (`create_member_device_batches`).

Usage:

  batches = device_data.create_device_batches(
      dataset, mesh, **input_pipeline.batch_order(config), start_step=step)
  images = next(batches)  # float32 (B, H, W, C), sharded over the data axis
"""

import collections
import concurrent.futures
import functools
import itertools
import multiprocessing
import os
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from bvae_jax.core import devices
from bvae_jax.datasets import input_pipeline
from bvae_jax.datasets import registry

# White levels an 8-bit image may be stored with: 0/1 masks (dSprites) and
# 0..255 grey levels. A reader's float32 image is uint8 · float32(1 / level).
_UINT8_LEVELS = (1, 255)
# The copy may take this fraction of a device's free memory: the rest is for
# the model, its optimizer state and the step's activations.
_MAX_MEMORY_FRACTION = 0.5
# Records read (and checked for a lossless uint8 form) per task.
_READ_CHUNK = 4096
# Positions computed per task: ~0.25 s of one core, so handing a chunk from a
# worker process to this one costs little against computing it.
_POSITIONS_PER_CHUNK = 8192
# Tasks computed ahead of the consumer, per worker.
_TASKS_AHEAD = 2
# At most this many worker processes (8 × ~35k positions/s: batch 1024 at
# ~250 steps/s).
_MAX_WORKERS = 8


def create_device_batches(dataset: registry.Dataset, mesh: jax.sharding.Mesh,
                          *, batch_size: int, seed: int, subset_size: int = 0,
                          start_step: int = 0, workers: int | None = None,
                          sharding: jax.sharding.Sharding | None = None
                          ) -> Iterator[jax.Array]:
  """Loads the training images onto the devices; returns an iterator of batches.

  The data is loaded (and refused, if it does not fit) here, before the first
  batch is asked for. Close the iterator to end the workers and free the
  device copy.

  Args:
    dataset: the opened data set; worker processes open it again with its
      `opened_with` arguments.
    mesh: the training mesh; batches are split over its data axis.
    batch_size: the global batch size.
    seed: seed of the data order.
    subset_size: 0, or the size of the fixed training subset (these three as
      `input_pipeline.batch_order(config)` gives them).
    start_step: step of the first batch yielded.
    workers: processes that read records and compute positions; None picks
      `default_workers()`; 0: a thread of this process.
    sharding: the batches' placement; default `devices.batch_sharded(mesh)`.

  Returns:
    Iterator of float32 (batch_size, H, W, C) arrays placed with `sharding`,
    for steps start_step, start_step + 1, ..., equal to the host pipeline's
    batches of those steps.

  Raises:
    ValueError: naming `data_on_device`, in a multi-process job or when the
      images do not fit in device memory; or on a negative start_step.
  """
  batches = _device_batch_streams(
      dataset, mesh, batch_size=batch_size, seeds=(seed,),
      subset_size=subset_size, start_step=start_step, workers=workers,
      sharding=(devices.batch_sharded(mesh) if sharding is None
                else sharding), stacked=False)
  return _OnlyStream(batches)


def create_member_device_batches(dataset: registry.Dataset,
                                 mesh: jax.sharding.Mesh, *, batch_size: int,
                                 seeds: Sequence[int], subset_size: int = 0,
                                 start_step: int = 0,
                                 sharding: jax.sharding.Sharding,
                                 stacked: bool, workers: int | None = None
                                 ) -> Iterator[jax.Array | tuple[jax.Array,
                                                                 ...]]:
  """The batches of sweep members that each read their own stream.

  One copy of the training records on the devices; stream i is the host
  pipeline's stream of seed `seeds[i]`, bit for bit, as `create_device_batches`
  gives it for that seed alone.

  Args:
    dataset, mesh, batch_size, subset_size, start_step, workers: as for
      `create_device_batches`.
    seeds: each member's data seed.
    sharding: where each step's batches go: of the (M, B, H, W, C) array when
      `stacked`, else of each member's (B, H, W, C) array.
    stacked: yield one array with a leading member axis, else a tuple of one
      array per member.

  Returns:
    Iterator, per step from start_step on, of float32 (M, B, H, W, C), or a
    tuple of M float32 (B, H, W, C) arrays.

  Raises:
    ValueError: as `create_device_batches`, or on no seeds.
  """
  if not seeds:
    raise ValueError('create_member_device_batches needs at least one seed')
  return _device_batch_streams(
      dataset, mesh, batch_size=batch_size, seeds=tuple(seeds),
      subset_size=subset_size, start_step=start_step, workers=workers,
      sharding=sharding, stacked=stacked)


def _device_batch_streams(dataset, mesh, *, batch_size, seeds, subset_size,
                          start_step, workers, sharding, stacked):
  """Loads the records once; yields each step's batches of every seed."""
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}')
  if jax.process_count() > 1:
    raise ValueError(
        f'config.data_on_device=True is single-process only for now; this job '
        f'has {jax.process_count()} processes. Set it False (the host '
        'pipeline reads each process its own rows).')
  pool = Workers(default_workers() if workers is None else workers)
  try:
    records = input_pipeline.training_records(dataset, subset_size)
    images, scale = load_images(
        dataset, records, mesh, workers=pool,
        source=dataset.opened_with if pool.count else None)
    positions = [step_positions(len(records), batch_size=batch_size,
                                seed=seed, start_step=start_step,
                                workers=pool, shutdown_workers=False)
                 for seed in seeds]
  except BaseException:
    pool.shutdown()
    raise
  return _GatheredBatches(images, scale, positions, pool, sharding, stacked)


def default_workers() -> int:
  """Worker processes for records and positions: some on an accelerator.

  On CPU the cores belong to XLA's convolutions, and a thread keeps up with
  the step; 0 there.
  """
  if jax.default_backend() == 'cpu':
    return 0
  return max(1, min(_MAX_WORKERS, devices.available_cores() // 2))


class Workers:
  """Computes fn(item) over a stream of items, in order, a few items ahead.

  In `count` spawned processes (spawn, not fork: this process runs JAX's
  threads), or in one thread of this process when `count` is 0. Functions and
  items must pickle for processes.
  """

  def __init__(self, count: int):
    self.count = count
    if count:
      self._executor = concurrent.futures.ProcessPoolExecutor(
          count, mp_context=multiprocessing.get_context('spawn'),
          initializer=_worker_init)
    else:
      self._executor = concurrent.futures.ThreadPoolExecutor(1)

  def in_order(self, fn: Callable[[Any], Any],
               items: Iterable[Any]) -> Iterator[Any]:
    """fn(item) for each of `items` (possibly endless), in order."""
    items = iter(items)
    pending = collections.deque(
        self._executor.submit(fn, item) for item in
        itertools.islice(items, _TASKS_AHEAD * max(1, self.count)))
    try:
      while pending:
        result = pending.popleft().result()
        pending.extend(self._executor.submit(fn, item)
                       for item in itertools.islice(items, 1))
        yield result
    finally:
      for future in pending:
        future.cancel()

  def shutdown(self) -> None:
    """Ends the workers without waiting for tasks still running."""
    self._executor.shutdown(wait=False, cancel_futures=True)


def _worker_init() -> None:
  # Workers compute on the host only: never take (or preallocate) a GPU.
  os.environ['JAX_PLATFORMS'] = 'cpu'
  jax.config.update('jax_platforms', 'cpu')


def load_images(dataset: registry.Dataset, records: np.ndarray,
                mesh: jax.sharding.Mesh, *, workers: Workers | None = None,
                source: Any = None) -> tuple[jax.Array, float | None]:
  """Reads `records` once and copies them to every device of `mesh`.

  Args:
    dataset: the opened data set.
    records: record indices, in the order to store them.
    mesh: the devices to copy to (replicated).
    workers: where to read (left running); None: a thread.
    source: what the workers read: `dataset.images` (the default; threads
      only) or `dataset.opened_with` (processes open the data set with it).

  Returns:
    (images, scale): images (len(records), H, W, C), replicated over the
    mesh, as uint8 with the float32 `scale` that turns them into the reader's
    images exactly, or as float32 with scale None.

  Raises:
    ValueError: naming `data_on_device`, when the images do not fit.
  """
  start = time.perf_counter()
  shape = (len(records),) + tuple(dataset.observation_shape)
  local_devices = mesh.local_devices
  # Refuse before reading anything when even uint8 would not fit.
  check_fits(int(np.prod(shape)), local_devices)
  own_workers = workers is None
  workers = workers or Workers(0)
  read = functools.partial(_read_chunk, dataset.images if source is None
                           else source, records, size=_READ_CHUNK)
  offsets = range(0, len(records), _READ_CHUNK)
  chunks = workers.in_order(read, offsets)
  stored, scale = None, None
  try:
    for offset, (chunk_scale, values) in zip(offsets, chunks):
      if stored is None:  # The first chunk proposes the data set's form.
        scale = chunk_scale
        stored = np.empty(shape, np.float32 if scale is None else np.uint8)
        check_fits(stored.nbytes, local_devices)
      if chunk_scale != scale:
        exact = _as_read(chunk_scale, values)
        if scale is None:
          values = exact
        else:
          # E.g. an all-0/1 chunk of 0..255 data: try the data set's scale.
          chunk_scale, values = lossless_uint8(exact, (scale,))
          if chunk_scale is None:
            # uint8 cannot hold these: keep every record as float32 (those
            # stored so far convert back exactly).
            logging.info('data_on_device: records from %d on are not 8-bit '
                         'with scale %g; storing float32.', offset, scale)
            stored = _as_float32(stored, offset, scale)
            check_fits(stored.nbytes, local_devices)
            scale, values = None, exact
      stored[offset:offset + len(values)] = values
  finally:
    chunks.close()
    if own_workers:
      workers.shutdown()
  images = jax.device_put(stored, devices.replicated(mesh))
  logging.info('data_on_device: %d records of %s as %s%s: %.1f MiB on each of '
               '%d device(s), read and copied in %.1f s.', len(records),
               dataset.name, stored.dtype,
               '' if scale is None else f' (× {scale:g})',
               stored.nbytes / 2**20, len(local_devices),
               time.perf_counter() - start)
  return images, scale


def lossless_uint8(images: np.ndarray, candidates: tuple[float, ...] | None
                   = None) -> tuple[float | None, np.ndarray | None]:
  """(scale, u8) with `u8.astype(float32) * scale` bitwise equal to `images`.

  Args:
    images: float32 images as a reader returns them.
    candidates: scales to try, in order; default float32(1 / level) for each
      level of _UINT8_LEVELS.

  Returns:
    The first candidate that holds the images exactly, with the uint8 values;
    (None, None) if none does.
  """
  if candidates is None:
    candidates = tuple(float(np.float32(1.0 / level))
                       for level in _UINT8_LEVELS)
  for scale in candidates:
    values = np.clip(np.rint(images / np.float32(scale)), 0, 255).astype(
        np.uint8)
    # Bitwise, not ==: -0.0 == 0.0, but the step would see other bits.
    restored = values.astype(np.float32) * np.float32(scale)
    if np.array_equal(restored.view(np.uint32), images.view(np.uint32)):
      return scale, values
  return None, None


def check_fits(num_bytes: int, local_devices) -> None:
  """Raises ValueError (naming data_on_device) unless a copy fits each device."""
  for device in local_devices:
    budget, where = _memory_budget(device, len(local_devices))
    if budget is not None and num_bytes > budget:
      raise ValueError(
          f'config.data_on_device=True needs {num_bytes / 2**30:.2f} GiB for '
          f'the training images on each device, more than the '
          f'{budget / 2**30:.2f} GiB allowed ({_MAX_MEMORY_FRACTION:.0%} of '
          f'{where}). Set it False, or train on fewer records '
          '(config.train_subset_size).')


def step_positions(num_records: int, *, batch_size: int, seed: int,
                   start_step: int = 0, workers: Workers | None = None,
                   shutdown_workers: bool = True) -> Iterator[np.ndarray]:
  """Positions into the training records of each step's global batch.

  Element k is int32 (batch_size,): the positions the host pipeline reads at
  step start_step + k (it reads records `training_records(dataset, K)` at
  those positions).

  Args:
    num_records: number of training records (the subset's size, if any).
    batch_size: the global batch size.
    seed: seed of the data order.
    start_step: step of the first element.
    workers: compute chunks of steps ahead; None: a thread.
    shutdown_workers: shut `workers` down when the iterator closes (False
      where other streams share them).
  """
  chunk_steps = max(1, _POSITIONS_PER_CHUNK // batch_size)
  chunk = functools.partial(
      _chunk_positions, num_records=num_records, seed=seed,
      batch_size=batch_size, chunk_steps=chunk_steps)
  if workers is None:
    workers, shutdown_workers = Workers(0), True
  chunks = workers.in_order(chunk, itertools.count(start_step // chunk_steps))
  return _rows(chunks, workers if shutdown_workers else None,
               skip=start_step % chunk_steps)


def _chunk_positions(index: int, *, num_records: int, seed: int,
                     batch_size: int, chunk_steps: int) -> np.ndarray:
  """int32 (chunk_steps, batch_size): steps [index·k, (index + 1)·k)."""
  # The stream batched by k·B is the stream batched by B, k batches at a time.
  stream = input_pipeline.batch_record_indices(
      num_records, seed=seed, global_batch_size=chunk_steps * batch_size)
  return stream[index].astype(np.int32).reshape(chunk_steps, batch_size)


def _rows(chunks: Iterator[np.ndarray], workers: Workers | None,
          skip: int) -> Iterator[np.ndarray]:
  """The rows of `chunks`, less the first `skip`; closing ends `workers`."""
  try:
    for chunk in chunks:
      yield from chunk[skip:]
      skip = 0
  finally:
    chunks.close()
    if workers is not None:
      workers.shutdown()


class _GatheredBatches:
  """Iterator of each step's images, gathered on the devices from `positions`.

  Yields per step a tuple of one array per position stream, or with `stacked`
  one array whose leading axis runs over the streams. `close()` ends the
  position streams and `workers` and drops the device copy of the records,
  whether or not a batch was ever taken (a generator's `finally` would run
  only once it had started).
  """

  def __init__(self, images: jax.Array, scale: float | None,
               positions: list[Iterator[np.ndarray]], workers: Workers,
               sharding: jax.sharding.Sharding, stacked: bool):
    self._images = images
    self._positions = positions
    self._workers = workers
    self._sharding = sharding
    self._stacked = stacked

    # Each device gathers its rows from its own full copy: no communication.
    @functools.partial(jax.jit, out_shardings=sharding)
    def gather(images, rows):
      batch = images[rows]
      if scale is None:
        return batch
      return batch.astype(jnp.float32) * jnp.float32(scale)

    self._gather = gather

  def __iter__(self):
    return self

  def __next__(self) -> Any:
    if self._images is None:
      raise StopIteration
    rows = [next(stream) for stream in self._positions]
    if self._stacked:
      return self._gather(self._images,
                          jax.device_put(np.stack(rows), self._sharding))
    return tuple(self._gather(self._images,
                              jax.device_put(r, self._sharding))
                 for r in rows)

  def close(self) -> None:
    """Ends the position streams and the workers; frees the records' copy."""
    for stream in self._positions:
      stream.close()
    self._workers.shutdown()
    self._images = None


class _OnlyStream:
  """The arrays of a one-stream `_GatheredBatches`; `close()` closes it."""

  def __init__(self, batches: _GatheredBatches):
    self._batches = batches

  def __iter__(self):
    return self

  def __next__(self) -> jax.Array:
    (batch,) = next(self._batches)
    return batch

  def close(self) -> None:
    self._batches.close()


def _read_chunk(source: Any, records: np.ndarray, offset: int, size: int
                ) -> tuple[float | None, np.ndarray]:
  """Reads records[offset:offset + size]: (scale, uint8) or (None, float32).

  `source` is a reader, or the `open_dataset` arguments that open the data set
  (in a worker process, once).
  """
  reader = _open_reader(source) if isinstance(source, tuple) else source
  images = reader.read_images(records[offset:offset + size])
  scale, values = lossless_uint8(images)
  return (scale, values) if scale is not None else (None, images)


@functools.cache
def _open_reader(opened_with: tuple[str, str, str | None]):
  return registry.open_dataset(*opened_with).images


def _as_read(scale: float | None, values: np.ndarray) -> np.ndarray:
  """The reader's float32 images of a `_read_chunk` result."""
  if scale is None:
    return values
  return values.astype(np.float32) * np.float32(scale)


def _as_float32(stored: np.ndarray, filled: int, scale: float) -> np.ndarray:
  """A float32 array for every row, the first `filled` converted from uint8."""
  images = np.empty(stored.shape, np.float32)
  images[:filled] = _as_read(scale, stored[:filled])
  return images


def _memory_budget(device, num_local_devices: int) -> tuple[int | None, str]:
  """Bytes the copy may take on `device`, and what that is a fraction of."""
  stats = device.memory_stats() or {}
  if 'bytes_limit' in stats:
    free = stats['bytes_limit'] - stats.get('bytes_in_use', 0)
    return int(_MAX_MEMORY_FRACTION * free), f'the free memory of {device}'
  try:
    available = os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (AttributeError, ValueError, OSError):  # Not on Linux.
    return None, ''
  # Host devices share the host's memory, with the staging copy besides.
  return (int(_MAX_MEMORY_FRACTION * available / (num_local_devices + 1)),
          f'the available host memory, shared by {num_local_devices} '
          'device(s) and the staging copy')
