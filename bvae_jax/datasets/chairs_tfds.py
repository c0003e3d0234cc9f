r"""TFDS builder `chairs3d`: the 3D Chairs renders (Aubry et al. 2014) at 64x64.

Source: `rendered_chairs.tar` from the authors' site (ARCHIVE_URL), 1,393
chair CAD models rendered from 62 viewpoints each: 86,366 PNGs, 600x600 RGB
on a white background. The builder does not fetch it (a manual download in
TFDS's terms): download it yourself and place it, not extracted, in TFDS's
manual directory,

  <data_dir>/downloads/manual/rendered_chairs.tar

(`manual_archive_path(data_dir)`; `data_dir` is the builder's, None for TFDS's
default: $TFDS_DATA_DIR or ~/tensorflow_datasets).

Archive layout this builder reads (member names; anything else, such as
`rendered_chairs/all_chair_names.mat`, is ignored):

  rendered_chairs/<chair folder>/renders/image_<NNN>_p<EEE>_t<AAA>_r096.png

<chair folder> is the model's hash (e.g. 1a2b8749a1756a09932a5c2746cd09a4),
EEE the elevation in degrees (020 or 030) and AAA the azimuth in whole degrees,
31 values k·360/31 rounded down (000, 011, 023, 034, ..., 336, 348). NNN is a
running view number the builder does not use. This was checked against
public loaders of the archive (file lists built from exactly these azimuth
strings, and quoted names such as `<hash>/renders/image_000_p020_t000_r096.png`
and `image_052_p030_t232_r096.png`), not against the archive itself, which
could not be downloaded here. Every chair must have all 62 (azimuth,
elevation) views; the builder refuses an archive that does not (see below).

Images: each render is centre-cropped to its middle 2/3 (pixels 100:500 both
ways of a 600x600 render; other sizes are cropped proportionally) and shrunk to
64x64 with PIL's BOX filter, RGB uint8. The chairs are rendered in the middle
of a wide white canvas, so the crop drops margin and lets the chair fill more
of the frame, as the usual disentanglement preprocessing does (e.g. the
`center_crop=(400, 400)` of the disentangling-vae loader). BOX averages every
source pixel into the output pixel it falls in (6 or 7 per axis here): thin
legs and rails fade to grey instead of aliasing away, as they would with
point sampling at a 6.25x reduction.
Renders with alpha or a palette are composited on white and made RGB.

Records (`disable_shuffling`, so the order is the one written):

  index = (label_chair * 31 + label_azimuth) * 2 + label_elevation

  image            uint8 (64, 64, 3), Tensor(encoding='zlib')
  label_chair      int64, index of the chair folder in sorted folder names
  label_azimuth    ClassLabel(31), azimuth index in ascending degrees
  label_elevation  ClassLabel(2), 20° -> 0, 30° -> 1
  value_azimuth    float32, azimuth in degrees as in the file name
  value_elevation  float32, elevation in degrees
  chair_folder     Text, the chair's folder name (reads back as bytes)

There is no chair count in the metadata: a test archive may hold any number of
complete chairs, and `num_chairs(builder.info)` (= records // 62) gives it.

Nothing needs TensorFlow: the features have no TF encoder, the files are
array_record (read with `builder.as_data_source()`), and the split is written
without TFDS's shuffler, which needs TensorFlow once it holds over 1 GB
(array_record_builder.py).

Preparing reads the archive once without extracting it: first its headers
(fast for a plain tar; every name and view is checked before any decoding),
then the PNGs in archive order, decoded and shrunk in a thread pool (PIL
releases the GIL). A synthetic 600x600 render takes ~3 ms of CPU, so the full
archive should take a few minutes on a few cores. The finished records are
held in memory (~4 KB each for a synthetic render, ~0.35 GB in all) and
written as one shard. Any problem with the archive raises ChairsArchiveError
naming it; TFDS then removes its half-written output.

`SPEC` is the data set `chairs` of the registry: factors (chair, azimuth,
elevation), the number of chairs read from the prepared records.

Usage (after placing the archive):

  builder = Chairs3d(data_dir=data_dir)
  builder.download_and_prepare()
  source = builder.as_data_source()['train']
  source[0]['image']  # uint8 (64, 64, 3)
"""

import collections
import concurrent.futures
import io
import lzma
import os
import pathlib
import re
import tarfile
import time
import zlib

from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants

from bvae_jax.datasets import array_record_builder
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import records

ARCHIVE_NAME = 'rendered_chairs.tar'
ARCHIVE_URL = ('https://www.di.ens.fr/willow/research/seeing3Dchairs/data/'
               'rendered_chairs.tar')
# Azimuths and elevations (degrees) as the file names spell them, ascending;
# a label is an index into these.
AZIMUTHS = tuple(k * 360 // 31 for k in range(31))
ELEVATIONS = (20, 30)
VIEWS_PER_CHAIR = len(AZIMUTHS) * len(ELEVATIONS)
IMAGE_SIZE = 64
FACTOR_NAMES = ('chair', 'azimuth', 'elevation')
# The record feature holding each factor.
_FACTOR_LABELS = tuple(f'label_{name}' for name in FACTOR_NAMES)

# Top-level folder and the sub-folder of each chair that hold the renders.
_ROOT_FOLDER = 'rendered_chairs'
_RENDERS_FOLDER = 'renders'
_RENDER_NAME = re.compile(r'image_\d{3}_p(\d{3})_t(\d{3})_r\d{3}\.png')
_LAYOUT = (f'{_ROOT_FOLDER}/<chair>/{_RENDERS_FOLDER}/'
           'image_<NNN>_p<elevation>_t<azimuth>_r096.png')
# Part of each render kept before shrinking: the middle 2/3 of each side.
_CROP_START, _CROP_STOP = 1 / 6, 5 / 6
# What tarfile and the decompressors raise on a damaged or foreign file.
_ARCHIVE_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error,
                        lzma.LZMAError)
# What PIL raises on bytes that are not a whole, decodable image.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error,
                 Image.DecompressionBombError)
# Renders decoded between progress log lines.
_LOG_EVERY = 5000


class ChairsArchiveError(ValueError):
  """The 3D Chairs archive is missing, unreadable, unsafe or the wrong one."""


def manual_archive_path(data_dir=None):
  """Returns where the builder looks for `rendered_chairs.tar`.

  Args:
    data_dir: the builder's TFDS data dir; None for TFDS's default.
  """
  root = epath.Path(data_dir or constants.DATA_DIR)
  return root / 'downloads' / 'manual' / ARCHIVE_NAME


def num_chairs(info):
  """Number of chairs in a prepared data set, from its `builder.info`."""
  return info.splits['train'].num_examples // VIEWS_PER_CHAIR


def preprocess_render(png_bytes):
  """Decodes one render and returns it cropped and shrunk.

  Args:
    png_bytes: an encoded image (a PNG from the archive) of any size and mode.

  Returns:
    uint8 (IMAGE_SIZE, IMAGE_SIZE, 3): the middle 2/3 of the image (pixels
    100:500 of a 600x600 render), resized with PIL's BOX filter.
  """
  with Image.open(io.BytesIO(png_bytes)) as image:
    image = _rgb_on_white(image)
  width, height = image.size
  crop = (width * _CROP_START, height * _CROP_START,
          width * _CROP_STOP, height * _CROP_STOP)
  small = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX,
                       box=crop)
  return np.asarray(small, dtype=np.uint8)


class Chairs3d(array_record_builder.ArrayRecordBuilder):
  """3D Chairs renders, 64x64 RGB, with chair, azimuth and elevation labels."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download {ARCHIVE_URL} and place it, not extracted, at
  <data_dir>/downloads/manual/{ARCHIVE_NAME}
  (TFDS's manual directory: `dl_manager.manual_dir`).
  """

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            # zlib: the white background compresses well.
            'image': tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8,
                encoding='zlib'),
            'label_chair': tfds.features.Tensor(shape=(), dtype=np.int64),
            'label_azimuth': tfds.features.ClassLabel(
                num_classes=len(AZIMUTHS)),
            'label_elevation': tfds.features.ClassLabel(
                num_classes=len(ELEVATIONS)),
            'value_azimuth': tfds.features.Tensor(shape=(), dtype=np.float32),
            'value_elevation': tfds.features.Tensor(
                shape=(), dtype=np.float32),
            'chair_folder': tfds.features.Text(),
        }),
        homepage='https://www.di.ens.fr/willow/research/seeing3Dchairs/',
        # Record index = (label_chair * 31 + label_azimuth) * 2 +
        # label_elevation; readers compute indices from labels.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(_archive_path(dl_manager))}

  def _generate_examples(self, archive_path):
    """Yields (record index, record) in archive order; TFDS sorts by key."""
    yield from _read_examples(archive_path)


def builder(builder_config=None, data_dir=None):
  """Returns the builder, data in `data_dir` (None: TFDS's default).

  Args:
    builder_config: must be None: Chairs3d has no TFDS builder configs. The
      argument keeps the signature of `dsprites_tfds.builder`.
    data_dir: TFDS data dir.
  """
  if builder_config is not None:
    raise ValueError(
        f'chairs3d has no builder configs, got {builder_config!r}')
  return Chairs3d(data_dir=data_dir)


def _archive_path(dl_manager):
  """Returns the archive's path in the manual dir; raises if it is not there."""
  try:
    manual_dir = dl_manager.manual_dir
  except AssertionError:
    # TFDS raises this when the manual dir is missing or empty; the path it
    # checked is still the one to name.
    manual_dir = dl_manager._manual_dir  # pylint: disable=protected-access
  path = epath.Path(manual_dir) / ARCHIVE_NAME
  if not path.is_file():
    raise ChairsArchiveError(
        f'3D Chairs archive not found: expected {path}. Download {ARCHIVE_URL} '
        'and place it there, not extracted.')
  return path


def _read_examples(archive_path):
  """Yields (record index, record) for every render, in archive order.

  Raises:
    ChairsArchiveError: if the archive is unreadable, truncated, holds unsafe
      member names, is not laid out as the 3D Chairs archive, or holds a
      render that does not decode.
  """
  try:
    with tarfile.open(archive_path, 'r:*') as tar:
      renders = _index_renders(tar, archive_path)
      yield from _decoded_examples(tar, renders, archive_path)
  except _ARCHIVE_READ_ERRORS as error:
    raise ChairsArchiveError(
        f'cannot read the 3D Chairs archive {archive_path} (truncated or '
        f'corrupt?): {type(error).__name__}: {error}') from error


_Render = collections.namedtuple(
    '_Render', 'member chair_index chair azimuth_index elevation_index')


def _index_renders(tar, archive_path):
  """Checks every member name and returns the renders, in archive order.

  Reads only the headers, so a wrong archive fails before any decoding.
  """
  views_of_chair = collections.defaultdict(dict)
  num_ignored = 0
  for member in tar.getmembers():
    path = pathlib.PurePosixPath(member.name)  # Drops '.' parts.
    if path.is_absolute() or '..' in path.parts:
      raise ChairsArchiveError(
          f'{archive_path}: refusing member {member.name!r}: absolute paths '
          "and '..' are not part of the 3D Chairs layout.")
    if not member.isfile():
      continue  # Folders and links; renders are regular files.
    match = _RENDER_NAME.fullmatch(path.name)
    if (match is None or len(path.parts) != 4 or path.parts[0] != _ROOT_FOLDER
        or path.parts[2] != _RENDERS_FOLDER):
      num_ignored += 1
      continue
    elevation, azimuth = int(match[1]), int(match[2])
    if elevation not in ELEVATIONS or azimuth not in AZIMUTHS:
      raise ChairsArchiveError(
          f'{archive_path}: {member.name} is not one of the 62 rendered views '
          f'(elevations {ELEVATIONS}, azimuths {AZIMUTHS[0]}, {AZIMUTHS[1]}, '
          f'..., {AZIMUTHS[-1]}).')
    view = (AZIMUTHS.index(azimuth), ELEVATIONS.index(elevation))
    views = views_of_chair[path.parts[1]]
    if view in views:
      raise ChairsArchiveError(
          f'{archive_path}: {member.name} repeats the view of '
          f'{views[view].name}.')
    views[view] = member
  _check_end_of_archive(tar, archive_path)
  if not views_of_chair:
    raise ChairsArchiveError(
        f'{archive_path} holds no 3D Chairs renders (expected members named '
        f'{_LAYOUT}). Is it {ARCHIVE_URL}?')
  chairs = sorted(views_of_chair)
  for chair in chairs:
    missing = [f'p{ELEVATIONS[e]:03d}_t{AZIMUTHS[a]:03d}'
               for a in range(len(AZIMUTHS)) for e in range(len(ELEVATIONS))
               if (a, e) not in views_of_chair[chair]]
    if missing:
      raise ChairsArchiveError(
          f'{archive_path}: chair {chair} lacks {len(missing)} of its '
          f'{VIEWS_PER_CHAIR} views: {", ".join(missing[:5])}'
          f'{", ..." if len(missing) > 5 else ""} (expected {_LAYOUT} for '
          'every azimuth and elevation).')
  if num_ignored:
    logging.info('%s: ignored %d files outside %s.', archive_path, num_ignored,
                 _LAYOUT)
  renders = [_Render(member, chair_index, chair, *view)
             for chair_index, chair in enumerate(chairs)
             for view, member in views_of_chair[chair].items()]
  return sorted(renders, key=lambda render: render.member.offset)


def _check_end_of_archive(tar, archive_path):
  """Raises unless the member list ended at tar's end-of-archive block.

  tarfile stops listing silently at a missing, short or garbled header, so a
  truncated archive would otherwise pass as one with fewer chairs.
  """
  tar.fileobj.seek(tar.offset)
  block = tar.fileobj.read(tarfile.BLOCKSIZE)
  if len(block) != tarfile.BLOCKSIZE or block.count(tarfile.NUL) != len(block):
    raise ChairsArchiveError(
        f'{archive_path} ends without the end-of-archive marker after byte '
        f'{tar.offset}: the file is truncated or corrupt.')


def _decoded_examples(tar, renders, archive_path):
  """Yields (record index, record) of `renders`, decoded in a thread pool."""
  num_workers = os.cpu_count() or 1
  logging.info('chairs3d: decoding %d renders of %d chairs from %s with %d '
               'threads.', len(renders), len(renders) // VIEWS_PER_CHAIR,
               archive_path, num_workers)
  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
    # A few images per worker in flight: workers never wait for the reader,
    # and memory stays a few MB.
    pending = collections.deque()
    for done, render in enumerate(renders, start=1):
      png_bytes = tar.extractfile(render.member).read()
      pending.append((render, pool.submit(preprocess_render, png_bytes)))
      if len(pending) > 4 * num_workers:
        yield _example(*pending.popleft(), archive_path)
      if done % _LOG_EVERY == 0:
        logging.info('chairs3d: read %d of %d renders (%.0f a second).',
                     done, len(renders), done / (time.perf_counter() - start))
    while pending:
      yield _example(*pending.popleft(), archive_path)


def _example(render, image_future, archive_path):
  """Returns (record index, record) of a render being decoded."""
  try:
    image = image_future.result()
  except _IMAGE_ERRORS as error:
    raise ChairsArchiveError(
        f'{archive_path}: cannot decode {render.member.name} as an image '
        f'(corrupt archive?): {type(error).__name__}: {error}') from error
  index = ((render.chair_index * len(AZIMUTHS) + render.azimuth_index)
           * len(ELEVATIONS) + render.elevation_index)
  return index, {
      'image': image,
      'label_chair': render.chair_index,
      'label_azimuth': render.azimuth_index,
      'label_elevation': render.elevation_index,
      'value_azimuth': np.float32(AZIMUTHS[render.azimuth_index]),
      'value_elevation': np.float32(ELEVATIONS[render.elevation_index]),
      'chair_folder': render.chair,
  }


def _rgb_on_white(image):
  """Returns `image` as RGB, transparent parts composited on white."""
  if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
    rgba = image.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert('RGB')
  return image.convert('RGB')


def _open(subset, data_dir):
  del subset  # One variant.
  builder = Chairs3d(data_dir=data_dir)
  # A missing, truncated or wrong archive raises ChairsArchiveError, naming
  # the file and the expected place.
  dataset_spec.prepare(
      builder, f'reading the manually downloaded {ARCHIVE_NAME}')
  images = records.ArrayRecordImages(builder, max_pixel_value=255)
  sizes = (num_chairs(builder.info),) + SPEC.factor_sizes[1:]
  return dataset_spec.Opened(
      builder=builder, images=images,
      make_ground_truth=lambda: ground_truth.RecordGroundTruth.from_labels(
          FACTOR_NAMES, sizes, SPEC.image_shape, images,
          images.read_labels(_FACTOR_LABELS),
          source_name=builder.info.full_name))


SPEC = dataset_spec.DatasetSpec(
    name='chairs',
    variants=('chairs',),
    sources=(dataset_spec.Source(
        'real', 'real', _open,
        'the 3D Chairs archive ({tfds_name} in {data_dir})'),),
    factor_names=FACTOR_NAMES,
    # The number of chairs is the archive's (1,393 in the real one).
    factor_sizes=(None, len(AZIMUTHS), len(ELEVATIONS)),
    image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
    # No published capacity schedule; 10 latents as Kim & Mnih (2018) on 3D
    # Chairs, and CelebA's 50 nats (Burgess et al. 2018), since chairs are RGB
    # renders with far more detail than sprites.
    config_settings=dict(latent_dim=10, capacity_max=50.0),
)
