"""MIG on representations whose answer is known, and on hand-worked cases."""

import numpy as np
import pytest

from bvae_jax.metrics import mig

LN2, LN3 = np.log(2), np.log(3)


def _factors(rng, num_points, sizes=(2, 3, 4, 5)):
  return np.stack([rng.integers(0, k, num_points) for k in sizes], axis=1)


def test_golden_two_factors_three_codes_by_hand():
  # f0 = 0 0 1 1, f1 = 0 1 0 1 (H = ln 2 each). c0 = f0 on another range,
  # c1 = 0 1 1 1, c2 constant; each code's two values fall in bins 1 and 20.
  # MI (codes × factors), worked in test_metric_mutual_info:
  #   c0 [ln 2, 0], c1 [a, a], c2 [0, 0], a = 3/2 ln 2 − 3/4 ln 3.
  # f0: (ln 2 − a) / ln 2; f1: (a − 0) / ln 2; their mean is exactly 1/2.
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  codes = np.array([[-3., 0., 7.], [-3., 1., 7.], [5., 1., 7.], [5., 1., 7.]])
  a = 1.5 * LN2 - 0.75 * LN3
  np.testing.assert_allclose(mig.mig_per_factor(codes, factors),
                             [(LN2 - a) / LN2, a / LN2], rtol=1e-12)
  np.testing.assert_allclose(mig.mig(codes, factors)['discrete_mig'], 0.5,
                             rtol=1e-12)


def test_golden_three_valued_factor_by_hand():
  # f0 = 0 0 1 1 2 2 (H = ln 3), f1 = 0 1 0 1 0 1 (H = ln 2);
  # c0 = 0 0 0 1 1 1, c1 = f0 / 2 (a relabelling of f0).
  # I(c0; f0): p = 1/3 at (0,0), 1/6 at (1,0), 1/6 at (1,1), 1/3 at (2,1),
  #   marginals 1/3 and 1/2: 1/3 ln 2 + 0 + 0 + 1/3 ln 2 = 2/3 ln 2.
  # I(c0; f1): p = 1/3, 1/6, 1/6, 1/3 on (0,0), (0,1), (1,0), (1,1),
  #   marginals 1/2: 2/3 ln(4/3) + 1/3 ln(2/3) = 5/3 ln 2 − ln 3 ≈ 0.0566.
  # I(c1; f0) = ln 3; I(c1; f1) = 0 (each f0 value meets f1 = 0 and 1 once).
  # f0: (ln 3 − 2/3 ln 2) / ln 3; f1: (5/3 ln 2 − ln 3 − 0) / ln 2.
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]])
  codes = np.stack([[0, 0, 0, 1, 1, 1], factors[:, 0] / 2], axis=1)
  expected = [(LN3 - 2 / 3 * LN2) / LN3, (5 / 3 * LN2 - LN3) / LN2]
  np.testing.assert_allclose(mig.mig_per_factor(codes, factors), expected,
                             rtol=1e-12)
  np.testing.assert_allclose(mig.mig(codes, factors)['discrete_mig'],
                             np.mean(expected), rtol=1e-12)


def test_identity_and_monotone_transform_give_mig_near_one():
  rng = np.random.default_rng(0)
  factors = _factors(rng, 2000)
  noise = 0.01 * rng.normal(size=factors.shape)
  assert mig.mig(factors + noise, factors)['discrete_mig'] > 0.97
  # Monotone (not affine) per code; factor values still land in distinct bins.
  transformed = 2. * factors + 0.1 * factors**2 - 3. + noise
  assert mig.mig(transformed, factors)['discrete_mig'] > 0.97


def test_constant_codes_give_zero():
  rng = np.random.default_rng(1)
  factors = _factors(rng, 500)
  result = mig.mig(np.full((500, 6), 0.3), factors)
  assert result == {'discrete_mig': 0.}


def test_duplicated_latent_gives_zero_gap_for_its_factor():
  rng = np.random.default_rng(2)
  factors = _factors(rng, 1000)
  codes = factors + 0.01 * rng.normal(size=factors.shape)
  # Two copies of the code of factor 0.
  duplicated = np.concatenate([codes[:, :1], codes], axis=1)
  gaps = mig.mig_per_factor(duplicated, factors)
  assert gaps[0] == 0.
  assert np.all(gaps[1:] > 0.97)


def test_non_square_layout_finds_the_right_factor():
  # 5 codes, 3 factors, 1001 points: only factor 1 is encoded (in code 3).
  # A reshape in place of a transpose would mix points and codes.
  rng = np.random.default_rng(3)
  factors = _factors(rng, 1001, sizes=(3, 4, 2))
  codes = rng.normal(size=(1001, 5))
  codes[:, 3] = factors[:, 1] + 0.01 * rng.normal(size=1001)
  gaps = mig.mig_per_factor(codes, factors)
  assert gaps.shape == (3,)
  assert gaps[1] > 0.97
  assert np.all(gaps[[0, 2]] < 0.05)


def test_invariant_to_permuting_and_affinely_rescaling_codes():
  rng = np.random.default_rng(4)
  factors = _factors(rng, 800)
  # Entangled codes, so that MIG is neither 0 nor 1.
  codes = factors @ rng.normal(size=(4, 6)) + 0.5 * rng.normal(size=(800, 6))
  reference = mig.mig(codes, factors)['discrete_mig']
  assert 0.02 < reference < 0.9
  permutation = [3, 0, 5, 1, 4, 2]
  assert mig.mig(codes[:, permutation], factors)['discrete_mig'] == reference
  scales = np.array([3.7, 0.01, 250., -1., 1., -0.3])  # Sign flips too.
  np.testing.assert_allclose(
      mig.mig(codes * scales + rng.normal(size=6), factors)['discrete_mig'],
      reference, rtol=1e-12)


def test_constant_factor_gives_nan_as_disentanglement_lib():
  rng = np.random.default_rng(5)
  factors = _factors(rng, 300, sizes=(1, 3))
  gaps = mig.mig_per_factor(rng.normal(size=(300, 3)), factors)
  assert np.isnan(gaps[0]) and np.isfinite(gaps[1])


def test_needs_two_codes():
  with pytest.raises(ValueError, match='two codes'):
    mig.mig(np.zeros((10, 1)), np.zeros((10, 2), dtype=int))
