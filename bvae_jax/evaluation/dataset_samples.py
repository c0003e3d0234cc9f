r"""Draws sample images of each data set, one row per set (docs/datasets.md).

  python -m bvae_jax.evaluation.dataset_samples --output=docs/images/datasets.png
  python -m bvae_jax.evaluation.dataset_samples --datasets=chairs,shapes3d \
      --data_dir=~/tensorflow_datasets --output=/tmp/real_sets.png

Each row shows the same records as the training figures of that data set
(`input_pipeline.fixed_images`). A data set that cannot be opened here (no
archive, no network) is left out with a line saying why; the figure is drawn
from the rest. Grey images are shown in grey, coloured ones in colour.
"""

from absl import app
from absl import flags
from absl import logging
from matplotlib.figure import Figure
import numpy as np

from bvae_jax.datasets import input_pipeline
from bvae_jax.datasets import registry
from bvae_jax.figures import drawing

_DATASETS = flags.DEFINE_list(
    'datasets', ['dsprites', 'color_dsprites', 'gaussian_blobs'],
    f'Data sets to draw, from {registry.DATASET_NAMES}.')
_SOURCE = flags.DEFINE_enum('dataset_source', 'auto', registry.DATASET_SOURCES,
                            'Source of dsprites/color_dsprites.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data dir.')
_NUM_IMAGES = flags.DEFINE_integer('num_images', 10, 'Images per row.')
_OUTPUT = flags.DEFINE_string('output', 'docs/images/datasets.png', 'PNG path.')


def sample_rows(names, data_dir, dataset_source, num_images):
  """Returns [(label, float32 (num_images, 64, 64, 3) images)] per openable set."""
  rows = []
  for name in names:
    try:
      # The source choice is for sets with both kinds of source (dsprites,
      # color_dsprites); every other set opens its only one.
      source = (dataset_source if len(registry.get_spec(name).source_kinds) > 1
                else 'auto')
      dataset = registry.open_dataset(name, source, data_dir)
    except (registry.DatasetUnavailableError, ValueError) as error:
      logging.warning('Left out %s: %s', name, error)
      continue
    images = input_pipeline.fixed_images(dataset, num_images)
    if images.shape[-1] == 1:
      images = np.repeat(images, 3, axis=-1)
    rows.append((f'{name}\n({dataset.source})', images))
  return rows


def save_figure(path, rows):
  """Writes the rows as one labelled mosaic."""
  canvas = drawing.mosaic(np.stack([images for _, images in rows]))
  height, width, _ = canvas.shape
  scale = 2.0 / 100  # Two screen pixels per image pixel at dpi 100.
  figure = Figure(figsize=(width * scale + 2.0, height * scale + 0.2),
                      dpi=100)
  axes = figure.add_axes((2.0 / (width * scale + 2.0), 0.0,
                          width * scale / (width * scale + 2.0), 1.0))
  axes.imshow(canvas, interpolation='nearest')
  axes.set_xticks([])
  tile = canvas.shape[0] / len(rows)
  axes.set_yticks([tile * (i + 0.5) for i in range(len(rows))])
  axes.set_yticklabels([label for label, _ in rows], fontsize=9)
  for spine in axes.spines.values():
    spine.set_visible(False)
  figure.savefig(path)


def main(argv):
  del argv
  rows = sample_rows(_DATASETS.value, _DATA_DIR.value, _SOURCE.value,
                     _NUM_IMAGES.value)
  if not rows:
    raise app.UsageError('None of the data sets could be opened; see the log.')
  save_figure(_OUTPUT.value, rows)
  logging.info('Wrote %s (%s).', _OUTPUT.value,
               ', '.join(label.split('\n')[0] for label, _ in rows))


if __name__ == '__main__':
  app.run(main)
