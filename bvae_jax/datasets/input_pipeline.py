r"""Training batches of images of any data set of bvae_jax, with grain.

One pipeline for every data set (datasets/registry.py): record indices are
shuffled and batched here; the data set's reader turns them into float32
images in [0, 1] (decoding, colouring or cropping as the set needs).

The global batch of step s is a function of (data seed, s) alone:

  record stream  = MapDataset.range(N).seed(seed).shuffle().repeat()
                   (a new permutation each epoch, epoch e seeded with seed + e;
                   seed is config.data_seed, or config.seed when that is None)
  global batch s = records [s·B, (s+1)·B) of that stream

(with config.train_subset_size = K > 0, the stream runs over K fixed records
instead: the first K of a permutation that no seed changes), so a run resumed
at step k (start_step=k) sees exactly the batches it would
have seen, and batches run across epoch ends without a short batch. Process p
of P takes rows [p·b, (p+1)·b) of every global batch (b = B / P) and reads only
those records; the processes' slices concatenate to the one-process batch.
Batches are read and decoded ahead in grain's background threads.

Usage:

  iterator = create_train_iterator(config, start_step=step)
  batch = next(iterator)  # {'image': float32 (b, 64, 64, 1) in [0, 1]}
"""

import grain
import jax
import numpy as np

from bvae_jax.datasets import registry


# Seed of the permutation `fixed_images` draws from; not config.seed, so that
# every run's figures show the same images.
_FIXED_IMAGES_SEED = 0
# Seed of the permutation whose first config.train_subset_size records form
# the training subset: fixed, so every seed and member trains on one subset.
_SUBSET_SEED = 1
# Background reading: batches in flight and threads decoding them. Two threads
# fill both cores of a small machine while the step runs on the accelerator.
_PREFETCH_BATCHES = 8
_READ_THREADS = 2


def create_train_iterator(config, *, start_step=0, process_index=None,
                          process_count=None, dataset=None):
  """Returns an endless iterator over this process's training batches.

  Args:
    config: ConfigDict with `dataset` (see datasets/registry.py),
      `dataset_source`, `data_dir` (None: TFDS default), `batch_size` (global)
      and `seed`.
    start_step: step of the first batch yielded.
    process_index: this process's index; defaults to jax.process_index().
    process_count: number of processes; defaults to jax.process_count().
    dataset: the opened data set; None opens `config.dataset`.

  Returns:
    Iterator of {'image': float32 (batch_size // process_count, H, W, C) in
    [0, 1]}, for steps start_step, start_step + 1, ...

  Raises:
    ValueError: on an unknown data set, a batch size that the processes cannot
      share evenly, or a negative start_step.
  """
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  if config.batch_size % process_count:
    raise ValueError(
        f'batch_size {config.batch_size} is not divisible by the process '
        f'count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(
        f'process_index {process_index} not in [0, {process_count})')
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}')
  images = (dataset or registry.open_dataset(config)).images
  records = training_records(config, images.num_records)
  local_batch_size = config.batch_size // process_count
  rows = slice(process_index * local_batch_size,
               (process_index + 1) * local_batch_size)
  batches = (
      batch_record_indices(len(records), seed=data_seed(config),
                           global_batch_size=config.batch_size)
      # Slicing the indices before reading: a process reads only its rows.
      .map(lambda positions: {
          'image': images.read_images(records[positions[rows]])})
  )
  batches = batches[start_step:]
  return iter(batches.to_iter_dataset(grain.ReadOptions(
      num_threads=_READ_THREADS, prefetch_buffer_size=_PREFETCH_BATCHES)))


def data_seed(config):
  """The seed of the data order: config.data_seed, else config.seed."""
  seed = config.get('data_seed')
  return config.seed if seed is None else seed


def training_records(config, num_records):
  """The record indices training draws from (all, or the fixed subset).

  Args:
    config: ConfigDict with `train_subset_size` (0 or absent: all records).
    num_records: size of the data set.

  Returns:
    int64 array of record indices.

  Raises:
    ValueError: if the subset is larger than the data set.
  """
  size = config.get('train_subset_size') or 0
  if size > num_records:
    raise ValueError(
        f'config.train_subset_size={size} exceeds the {num_records} records '
        f'of data set {config.dataset!r}')
  if not size:
    return np.arange(num_records, dtype=np.int64)
  return np.random.default_rng(_SUBSET_SEED).permutation(num_records)[:size]


def batch_record_indices(num_records, *, seed, global_batch_size):
  """The record indices of every global batch, as an endless MapDataset.

  Element s is an int64 array (global_batch_size,): the records of step s.
  Each epoch is a permutation of range(num_records), epoch e drawn with seed
  seed + e (grain's index_shuffle), and batches run on across epoch ends.

  Args:
    num_records: size of the data set.
    seed: int in [0, 2**32).
    global_batch_size: records per step, over all processes.
  """
  return (grain.MapDataset.range(num_records)
          .seed(seed)
          .shuffle()
          .repeat()
          .batch(global_batch_size))


def fixed_images(config, num, dataset=None):
  """Returns `num` images of `config.dataset`, the same ones on every call.

  They are the first `num` records of a fixed permutation (independent of
  config.seed), so figures of different runs show the same images.

  Args:
    config: ConfigDict with `dataset`, `dataset_source` and `data_dir`.
    num: number of images, at most the data set's size.
    dataset: the opened data set; None opens `config.dataset`.

  Returns:
    float32 (num, H, W, C) in [0, 1].
  """
  images = (dataset or registry.open_dataset(config)).images
  if not 0 < num <= images.num_records:
    raise ValueError(f'num must be in [1, {images.num_records}], got {num}')
  permutation = np.random.default_rng(_FIXED_IMAGES_SEED).permutation(
      images.num_records)
  return images.read_images(permutation[:num])
