r"""Throughput of the dSprites renderer, the TFDS preparation and the pipeline.

  python -m benchmarks.input_pipeline                    # prepares in a temp dir
  python -m benchmarks.input_pipeline --data_dir=~/tensorflow_datasets

Measures, on dsprites_procedural (full, 737,280 images):
  * prepare_seconds: download_and_prepare of the full config, in a separate
    process so that its memory does not count below (null if the data set was
    already prepared in --data_dir).
  * images_per_sec: input_pipeline.create_train_iterator at batch 64, after a
    warm-up, in this process.
  * tfds_source_images_per_sec: the same reads through
    builder.as_data_source().__getitems__ (why the pipeline reads on its own).
  * rss_mb / peak_rss_mb: this process's memory after reading.
  * render_images_per_sec: dsprites.render over the whole set.
The last line printed is all of it as one JSON object.
"""

import argparse
from concurrent import futures
import itertools
import json
import multiprocessing
import os
import tempfile
import time

import ml_collections
import numpy as np

from bvae_jax import input_pipeline
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds

DATASET = 'dsprites_procedural'
BATCH_SIZE = 64
WARMUP_BATCHES = 50


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=None,
                      help='TFDS data dir; default: a temporary one.')
  parser.add_argument('--batches', type=int, default=2000,
                      help='Timed batches of the pipeline.')
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as temp_dir:
    data_dir = os.path.expanduser(args.data_dir or temp_dir)
    results = {
        'batch_size': BATCH_SIZE,
        'cpu_count': os.cpu_count(),
        'prepare_seconds': prepare_in_subprocess(data_dir),
    }
    config = ml_collections.ConfigDict({
        'dataset': DATASET, 'data_dir': data_dir,
        'batch_size': BATCH_SIZE, 'seed': 0})
    results['images_per_sec'] = {DATASET: pipeline_throughput(config,
                                                              args.batches)}
    results['tfds_source_images_per_sec'] = tfds_source_throughput(data_dir)
    # Memory of reading only: rendering below allocates chunks of its own.
    results.update(memory_mb())
    results['render_images_per_sec'] = render_throughput()
    print(json.dumps(results))


def render_throughput():
  """Images/s of dsprites.render over the full set, in chunks of 8,192."""
  dsprites.render(np.zeros((1, 5), int))  # Builds the cached masks.
  factors = dsprites.index_to_factors(np.arange(dsprites.NUM_IMAGES))
  start = time.perf_counter()
  for first in range(0, dsprites.NUM_IMAGES, 8_192):
    dsprites.render(factors[first:first + 8_192])
  seconds = time.perf_counter() - start
  print(f'render: {dsprites.NUM_IMAGES} images in {seconds:.1f} s')
  return round(dsprites.NUM_IMAGES / seconds)


def prepare_in_subprocess(data_dir):
  """Seconds to prepare the full set (None if already prepared)."""
  context = multiprocessing.get_context('spawn')
  with futures.ProcessPoolExecutor(1, mp_context=context) as pool:
    seconds = pool.submit(_prepare, data_dir).result()
  if seconds is None:
    print(f'prepare: already prepared in {data_dir}')
  else:
    print(f'prepare: {seconds:.1f} s')
  return seconds


def _prepare(data_dir):
  builder = dsprites_tfds.builder('full', data_dir)
  if builder.is_prepared():
    return None
  start = time.perf_counter()
  builder.download_and_prepare()
  return round(time.perf_counter() - start, 1)


def pipeline_throughput(config, num_batches):
  """Images/s of create_train_iterator after WARMUP_BATCHES batches."""
  iterator = input_pipeline.create_train_iterator(
      config, process_index=0, process_count=1)
  for _ in itertools.islice(iterator, WARMUP_BATCHES):
    pass
  start = time.perf_counter()
  for _ in itertools.islice(iterator, num_batches):
    pass
  seconds = time.perf_counter() - start
  images_per_sec = round(num_batches * BATCH_SIZE / seconds)
  print(f'pipeline: {images_per_sec} images/s ({num_batches} batches)')
  return images_per_sec


def tfds_source_throughput(data_dir, num_batches=100):
  """Images/s reading and decoding with the TFDS source's __getitems__."""
  builder = dsprites_tfds.builder('full', data_dir)
  source = builder.as_data_source('train')
  indices = input_pipeline.batch_record_indices(
      len(source), seed=1, global_batch_size=BATCH_SIZE)
  start = time.perf_counter()
  for step in range(num_batches):
    records = source.__getitems__(indices[step].tolist())
    np.stack([r['image'] for r in records]).astype(np.float32)
  seconds = time.perf_counter() - start
  images_per_sec = round(num_batches * BATCH_SIZE / seconds)
  print(f'tfds as_data_source: {images_per_sec} images/s')
  return images_per_sec


def memory_mb():
  """Current and peak resident memory of this process, in MB."""
  fields = {}
  with open('/proc/self/status') as status:
    for line in status:
      name, _, value = line.partition(':')
      if name in ('VmRSS', 'VmHWM'):
        fields[name] = round(int(value.split()[0]) / 1024)
  return {'rss_mb': fields.get('VmRSS'), 'peak_rss_mb': fields.get('VmHWM')}


if __name__ == '__main__':
  main()
