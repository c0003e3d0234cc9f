"""The procedural dSprites renderer against 160 real dSprites frames.

Issue 13's bar: for each shape, the median best-match IoU is at least 0.97 and
its 10th percentile at least 0.93. The renderer before the fitted geometry
(whole-pixel positions, supersampled areas 368/288/225) had a median of 0.886
and a 10th percentile of 0.67, hearts worst. The real frames and their source
are in tests/data/ (README.md there).
"""

import numpy as np
import pytest

from bvae_jax.datasets import dsprites
from bvae_jax.evaluation import dataset_fidelity


@pytest.fixture(scope='module')
def matches():
  frames, shapes = dataset_fidelity.load_reference_frames()
  iou, factors = dataset_fidelity.best_matches(frames, shapes)
  return frames, shapes, iou, factors


@pytest.mark.slow
def test_every_shape_meets_the_fidelity_bar(matches):
  _, shapes, iou, _ = matches
  summary = dataset_fidelity.summary(iou, shapes)
  assert set(summary) == {'square', 'ellipse', 'heart'}
  assert [s['frames'] for s in summary.values()] == [32, 32, 96]
  for name, stats in summary.items():
    assert stats['median_iou'] >= 0.97, (name, stats)
    assert stats['p10_iou'] >= 0.93, (name, stats)
  # What the fit reaches today (measured: minimum 0.989, 151 of 160 exact).
  assert iou.min() >= 0.98
  assert np.sum(iou == 1.0) >= 140


@pytest.mark.slow
def test_best_matches_are_the_animations_factors(matches):
  # The animation grows each shape through the six scales at orientation 0
  # and position (0, 0) before rotating it: its first frames must be matched
  # by those factors, not by any image that happens to overlap well.
  _, shapes, _, factors = matches
  squares = factors[shapes == dsprites.SQUARE]
  np.testing.assert_array_equal(squares[:4, 2:], 0)
  assert sorted(set(squares[:12, 1])) == list(range(6))


@pytest.mark.slow
def test_best_match_search_finds_a_rendered_image_exactly():
  wanted = dsprites.index_to_factors(np.array([1_000, 300_000, 700_000]))
  frames = dsprites.render(wanted)[..., 0]
  iou, found = dataset_fidelity.best_matches(frames, wanted[:, 0])
  np.testing.assert_array_equal(iou, 1.0)
  np.testing.assert_array_equal(dsprites.render(found), dsprites.render(wanted))
