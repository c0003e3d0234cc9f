"""The sample-image figure of docs/datasets.md."""

import logging

import matplotlib.image
import numpy as np

from bvae_jax.evaluation import dataset_samples


def test_rows_of_openable_sets_and_a_reason_for_the_others(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    rows = dataset_samples.sample_rows(
        ['dsprites/tiny', 'color_dsprites/tiny', 'chairs'], str(tmp_path),
        'procedural', num_images=4)
  assert [label for label, _ in rows] == [
      'dsprites/tiny\n(procedural)', 'color_dsprites/tiny\n(procedural)']
  grey, coloured = (images for _, images in rows)
  assert grey.shape == coloured.shape == (4, 64, 64, 3)
  # Grey sprites are repeated over channels; coloured ones are not grey.
  assert (grey[..., 0] == grey[..., 2]).all()
  assert (coloured[..., 0] != coloured[..., 2]).any()
  assert any('Left out chairs' in r.message and 'rendered_chairs.tar' in r.message
             for r in caplog.records)

  path = tmp_path / 'figure.png'
  dataset_samples.save_figure(str(path), rows)
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 2 * 64
  assert np.ptp(image) > 0
