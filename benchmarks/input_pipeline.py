r"""Throughput of the data sets: preparation, the pipeline, the ground truth.

  python -m benchmarks.input_pipeline                    # prepares in a temp dir
  python -m benchmarks.input_pipeline --data_dir=~/tensorflow_datasets
  python -m benchmarks.input_pipeline --beside_training  # also while training

Measures:
  * prepare_seconds: download_and_prepare of dsprites_procedural/full
    (737,280 images), in a separate process so that its memory does not count
    below (null if already prepared in --data_dir).
  * images_per_sec[name]: input_pipeline.create_train_iterator at batch 64,
    after a warm-up, for dsprites_procedural, color_dsprites (procedural
    records), gaussian_blobs and chairs (a synthetic archive of
    --chairs_models models x 62 views of 600x600 PNGs in the real layout;
    real data is needed for shapes3d and celeb_a).
  * ground_truth_observations_per_sec[name]: sample(1000) of each data set's
    ground truth, in batches of 1000 (what the metrics draw). `dsprites_records`
    is the record lookup the official file uses, timed on procedural records.
  * tfds_source_images_per_sec: dSprites reads through
    builder.as_data_source().__getitems__ (why the pipeline reads on its own).
  * rss_mb / peak_rss_mb: this process's memory after reading full dSprites.
  * render_images_per_sec: dsprites.render over the whole set.
  * chairs_prepare_images_per_sec: decoding, cropping and writing the archive.
  * beside_training (--beside_training): dSprites pipeline images/s (slowest
    window) while `benchmarks.train_step` runs in another process the whole
    time, that run's images/s, and their ratio (must stay >= 10x).
The last line printed is all of it as one JSON object.
"""

import argparse
from concurrent import futures
import io
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
from PIL import Image

from bvae_jax.datasets import chairs_tfds
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import dsprites_tfds
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import input_pipeline
from bvae_jax.datasets import registry

DATASET = 'dsprites_procedural'
PIPELINE_DATASETS = ('dsprites_procedural', 'color_dsprites', 'gaussian_blobs',
                     'chairs')
BATCH_SIZE = 64
WARMUP_BATCHES = 50
GROUND_TRUTH_BATCH = 1000


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=None,
                      help='TFDS data dir; default: a temporary one.')
  parser.add_argument('--batches', type=int, default=2000,
                      help='Timed batches of the pipeline.')
  parser.add_argument('--chairs_models', type=int, default=10,
                      help='Chair models in the synthetic 3D Chairs archive.')
  parser.add_argument('--beside_training', action='store_true',
                      help='Also time the pipeline while training runs.')
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as temp_dir:
    data_dir = os.path.expanduser(args.data_dir or temp_dir)
    results = {
        'batch_size': BATCH_SIZE,
        'cpu_count': os.cpu_count(),
        'prepare_seconds': prepare_in_subprocess(data_dir),
    }
    chairs_dir = os.path.join(temp_dir, 'chairs')
    results['chairs_prepare_images_per_sec'] = prepare_synthetic_chairs(
        chairs_dir, args.chairs_models)
    results['images_per_sec'] = {}
    for name in PIPELINE_DATASETS:
      dataset = open_dataset(name, chairs_dir if name == 'chairs' else data_dir)
      results['images_per_sec'][name] = pipeline_throughput(dataset,
                                                            args.batches)
    results['tfds_source_images_per_sec'] = tfds_source_throughput(data_dir)
    # Memory of reading only: rendering below allocates chunks of its own.
    results.update(memory_mb())
    results['ground_truth_observations_per_sec'] = ground_truth_throughput(
        data_dir, chairs_dir)
    results['render_images_per_sec'] = render_throughput()
    if args.beside_training:
      results['beside_training'] = beside_training(
          open_dataset(DATASET, data_dir))
    print(json.dumps(results))


def open_dataset(name, data_dir):
  """Opens `name` (dSprites sets: drawn, never downloaded) in `data_dir`."""
  return registry.open_dataset(
      name, 'procedural' if 'dsprites' in name else 'auto', data_dir)


def prepare_synthetic_chairs(data_dir, num_models):
  """Writes a 3D Chairs archive of 600x600 renders, prepares it; images/s."""
  archive = chairs_tfds.manual_archive_path(data_dir)
  archive.parent.mkdir(parents=True)
  rng = np.random.default_rng(0)
  with tarfile.open(archive, 'w') as tar:
    for model in range(num_models):
      for view in range(chairs_tfds.VIEWS_PER_CHAIR):
        elevation, azimuth = divmod(view, len(chairs_tfds.AZIMUTHS))
        # A white canvas with a textured block where the chair would be.
        render = np.full((600, 600, 3), 255, np.uint8)
        render[150:450, 200:400] = rng.integers(0, 255, (300, 200, 3))
        buffer = io.BytesIO()
        Image.fromarray(render).save(buffer, format='PNG')
        name = (f'rendered_chairs/chair{model:04d}/renders/image_{view:03d}_'
                f'p{chairs_tfds.ELEVATIONS[elevation]:03d}_'
                f't{chairs_tfds.AZIMUTHS[azimuth]:03d}_r096.png')
        info = tarfile.TarInfo(name)
        info.size = buffer.tell()
        buffer.seek(0)
        tar.addfile(info, buffer)
  num_images = num_models * chairs_tfds.VIEWS_PER_CHAIR
  start = time.perf_counter()
  chairs_tfds.Chairs3d(data_dir=data_dir).download_and_prepare()
  images_per_sec = round(num_images / (time.perf_counter() - start))
  print(f'chairs prepare: {images_per_sec} images/s ({num_images} renders)')
  return images_per_sec


def ground_truth_throughput(data_dir, chairs_dir, num_batches=20):
  """Observations/s of sample(GROUND_TRUTH_BATCH) per data set."""
  truths = {}
  for name in ('dsprites_procedural', 'color_dsprites', 'gaussian_blobs',
               'chairs'):
    dataset = open_dataset(name, chairs_dir if name == 'chairs' else data_dir)
    truths[name] = dataset.ground_truth()
  # The official file's lookup (record i = image i), on the procedural records.
  full = open_dataset(DATASET, data_dir)
  truths['dsprites_records'] = ground_truth.RecordGroundTruth(
      dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, (64, 64, 1), full.images)
  rates = {}
  for name, truth in truths.items():
    random_state = np.random.RandomState(0)
    truth.sample(GROUND_TRUTH_BATCH, random_state)  # Warm-up.
    start = time.perf_counter()
    for _ in range(num_batches):
      truth.sample(GROUND_TRUTH_BATCH, random_state)
    rates[name] = round(num_batches * GROUND_TRUTH_BATCH
                        / (time.perf_counter() - start))
    print(f'ground truth {name}: {rates[name]} observations/s')
  return rates


def beside_training(dataset, window_batches=200):
  """Pipeline images/s while benchmarks.train_step trains in another process.

  The pipeline reads for as long as the trainer process lives (compilation,
  warm-up and its timed rounds), in windows of `window_batches`; the slowest
  window after the first is reported, so the ratio is a lower bound over the
  trainer's timed rounds.
  """
  trainer = subprocess.Popen(
      [sys.executable, '-m', 'benchmarks.train_step', '--seconds=40'],
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  iterator = input_pipeline.create_train_iterator(
      dataset, batch_size=BATCH_SIZE, seed=0, process_index=0,
      process_count=1)
  windows = []
  while trainer.poll() is None:
    start = time.perf_counter()
    for _ in itertools.islice(iterator, window_batches):
      pass
    windows.append(window_batches * BATCH_SIZE / (time.perf_counter() - start))
  training = json.loads(trainer.stdout.read().strip().splitlines()[-1])
  slowest = round(min(windows[1:] or windows))
  train_rate = training['images_per_sec']
  ratio = round(slowest / train_rate, 1)
  print(f'beside training: pipeline >= {slowest} images/s (slowest of '
        f'{len(windows)} windows), training {train_rate} images/s ({ratio}x)')
  return {'pipeline_images_per_sec_min': slowest,
          'pipeline_images_per_sec_median': round(float(np.median(windows))),
          'train_images_per_sec': train_rate, 'ratio': ratio}


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


def pipeline_throughput(dataset, num_batches):
  """Images/s of create_train_iterator after WARMUP_BATCHES batches."""
  iterator = input_pipeline.create_train_iterator(
      dataset, batch_size=BATCH_SIZE, seed=0, process_index=0,
      process_count=1)
  for _ in itertools.islice(iterator, WARMUP_BATCHES):
    pass
  start = time.perf_counter()
  for _ in itertools.islice(iterator, num_batches):
    pass
  seconds = time.perf_counter() - start
  images_per_sec = round(num_batches * BATCH_SIZE / seconds)
  print(f'pipeline {dataset.name}: {images_per_sec} images/s '
        f'({num_batches} batches)')
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
