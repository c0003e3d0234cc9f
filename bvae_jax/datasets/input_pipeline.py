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

  dataset = registry.open_dataset(config.dataset, config.dataset_source,
                                  config.data_dir)
  iterator = create_train_iterator(dataset, **batch_order(config),
                                   start_step=step)
  batch = next(iterator)  # {'image': float32 (b, 64, 64, 1) in [0, 1]}
"""

import grain
import jax
import numpy as np



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


def create_train_iterator(dataset, *, batch_size, seed, subset_size=0,
                          start_step=0, process_index=None,
                          process_count=None):
  """Returns an endless iterator over this process's training batches.

  Args:
    dataset: the opened data set (`registry.open_dataset`).
    batch_size: the global batch size (config.batch_size).
    seed: seed of the data order (`batch_order(config)` gives it and the
      other two).
    subset_size: train on a fixed subset of this many records
      (config.train_subset_size); 0: all records.
    start_step: step of the first batch yielded.
    process_index: this process's index; defaults to jax.process_index().
    process_count: number of processes; defaults to jax.process_count().

  Returns:
    Iterator of {'image': float32 (batch_size // process_count, H, W, C) in
    [0, 1]}, for steps start_step, start_step + 1, ...

  Raises:
    ValueError: on a batch size that the processes cannot share evenly, a
      subset larger than the data set, or a negative start_step.
  """
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  if batch_size % process_count:
    raise ValueError(
        f'batch_size {batch_size} is not divisible by the process '
        f'count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(
        f'process_index {process_index} not in [0, {process_count})')
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}')
  images = dataset.images
  records = training_records(dataset, subset_size)
  local_batch_size = batch_size // process_count
  rows = slice(process_index * local_batch_size,
               (process_index + 1) * local_batch_size)
  batches = (
      batch_record_indices(len(records), seed=seed,
                           global_batch_size=batch_size)
      # Slicing the indices before reading: a process reads only its rows.
      .map(lambda positions: {
          'image': images.read_images(records[positions[rows]])})
  )
  batches = batches[start_step:]
  return iter(batches.to_iter_dataset(grain.ReadOptions(
      num_threads=_READ_THREADS, prefetch_buffer_size=_PREFETCH_BATCHES)))


def batch_order(config):
  """The config's fields that fix which records each step reads.

  Returns:
    {'batch_size', 'seed', 'subset_size'} for `create_train_iterator` and
    `device_data.create_device_batches`: the seed is config.data_seed, else
    config.seed; the subset size config.train_subset_size (absent: 0).
  """
  seed = config.get('data_seed')
  return {'batch_size': config.batch_size,
          'seed': config.seed if seed is None else seed,
          'subset_size': config.get('train_subset_size') or 0}


def training_records(dataset, subset_size=0):
  """The record indices training draws from (all, or the fixed subset).

  Args:
    dataset: the opened data set.
    subset_size: 0 (all records), or the size of the fixed subset.

  Returns:
    int64 array of record indices.

  Raises:
    ValueError: if the subset is larger than the data set.
  """
  num_records = dataset.num_records
  if subset_size > num_records:
    raise ValueError(
        f'config.train_subset_size={subset_size} exceeds the {num_records} '
        f'records of data set {dataset.name!r}')
  if not subset_size:
    return np.arange(num_records, dtype=np.int64)
  return np.random.default_rng(_SUBSET_SEED).permutation(
      num_records)[:subset_size]


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


def fixed_images(dataset, num):
  """Returns `num` images of `dataset`, the same ones on every call.

  They are the first `num` records of a fixed permutation (independent of
  config.seed), so figures of different runs show the same images.

  Args:
    dataset: the opened data set.
    num: number of images, at most the data set's size.

  Returns:
    float32 (num, H, W, C) in [0, 1].
  """
  images = dataset.images
  if not 0 < num <= images.num_records:
    raise ValueError(f'num must be in [1, {images.num_records}], got {num}')
  permutation = np.random.default_rng(_FIXED_IMAGES_SEED).permutation(
      images.num_records)
  return images.read_images(permutation[:num])
