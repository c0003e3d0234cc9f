"""TensorBoard's own reader on a short run: the scalars and images it shows.

The event files are written with tensorboardX; the other tests parse them by
hand (event_files.py). Here tensorboard's `EventAccumulator`, what the
`tensorboard` command uses, reads a trained and evaluated run, so a file that
TensorBoard could not show fails the build.
"""

import io
import os

import numpy as np
from PIL import Image
import pytest
from tensorboard.backend.event_processing import event_accumulator

from bvae_jax.evaluation import evaluate
from bvae_jax.training import train
from tiny_configs import tiny_config

STEPS = 4


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A 4-step capacity run with figures at its end, then evaluated (MIG)."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = tiny_config(str(tmp_path_factory.mktemp('tfds')),
                       num_train_steps=STEPS, figure_every_steps=STEPS)
  config.eval.metrics = ('mig',)
  train.train_and_evaluate(config, workdir)
  evaluate.evaluate(config, workdir)
  accumulator = event_accumulator.EventAccumulator(
      workdir, size_guidance={event_accumulator.SCALARS: 0,
                              event_accumulator.IMAGES: 0})
  accumulator.Reload()
  return config, workdir, accumulator


def decoded(image_event):
  return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)))


@pytest.mark.slow
def test_tensorboard_reads_the_scalars(run):
  config, _, accumulator = run
  scalars = accumulator.Tags()['scalars']
  expected = {'loss', 'reconstruction', 'kl_total', 'capacity',
              'kl_capacity_gap', 'grad_norm', 'steps_per_sec',
              'images_per_sec', 'eval/mig/discrete_mig'} | {
                  f'kl_per_latent/z{i}' for i in range(config.latent_dim)}
  assert expected <= set(scalars), expected - set(scalars)
  # Logged every 2 steps (tiny_config) and at the end.
  assert [e.step for e in accumulator.Scalars('loss')] == [2, 4]
  kl = [accumulator.Scalars(f'kl_per_latent/z{i}')[-1].value
        for i in range(config.latent_dim)]
  assert accumulator.Scalars('kl_total')[-1].value == pytest.approx(
      sum(kl), rel=1e-4)
  mig = accumulator.Scalars('eval/mig/discrete_mig')
  assert [e.step for e in mig] == [STEPS] and 0 <= mig[0].value <= 1


@pytest.mark.slow
def test_tensorboard_reads_the_training_images(run):
  config, _, accumulator = run
  images = accumulator.Tags()['images']
  assert {'traversal', 'reconstructions'} <= set(images), images
  traversal = accumulator.Images('traversal')
  assert [e.step for e in traversal] == [STEPS]
  # Data, reconstructions, then one row per latent; a column per value.
  rows, columns, side = 2 + config.latent_dim, config.traversal_steps, 64
  gap = 2  # Between tiles (figures.mosaic).
  assert (traversal[0].height, traversal[0].width) == (
      rows * (side + gap) - gap, columns * (side + gap) - gap)
  reconstructions = accumulator.Images('reconstructions')
  assert [e.step for e in reconstructions] == [STEPS]
  assert (reconstructions[0].height, reconstructions[0].width) == (
      2 * (side + gap) - gap,
      config.num_figure_images * (side + gap) - gap)
  picture = decoded(reconstructions[0])
  # Data rows of dSprites are binary: the top row holds only black and white.
  assert set(np.unique(picture[:side])) <= {0, 255}


@pytest.mark.slow
def test_tensorboard_reads_the_evaluation_figures_as_on_disk(run):
  _, workdir, accumulator = run
  for tag, name in [('eval_figures/mutual_information',
                     f'mutual_information_{STEPS}.png'),
                    ('eval_figures/mig_per_factor', f'mig_{STEPS}.png')]:
    events = accumulator.Images(tag)
    assert [e.step for e in events] == [STEPS], tag
    on_disk = np.asarray(Image.open(os.path.join(workdir, 'eval', name))
                         .convert('RGB'))
    np.testing.assert_array_equal(decoded(events[0])[..., :3], on_disk)
