"""Discretisation and plug-in MI against sklearn and hand calculations."""

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from bvae_jax.metrics import mutual_info


def _random_factors(rng, num_points, num_factors):
  # Factor j takes j + 2 values, so columns are told apart by their ranges too.
  return np.stack([rng.integers(0, j + 2, num_points)
                   for j in range(num_factors)], axis=1)


def test_histogram_discretize_is_per_code_over_the_sample_range():
  rng = np.random.default_rng(0)
  # Columns with very different ranges: binning a row or the pooled array
  # instead of each column would give other labels.
  codes = rng.normal(size=(101, 3)) * [1., 100., 0.01] + [0., 5., -3.]
  discrete = mutual_info.histogram_discretize(codes, num_bins=7)
  assert discrete.shape == (101, 3)
  for i in range(3):
    edges = np.linspace(codes[:, i].min(), codes[:, i].max(), 8)
    np.testing.assert_array_equal(discrete[:, i],
                                  np.digitize(codes[:, i], edges[:-1]))
    assert discrete[np.argmin(codes[:, i]), i] == 1
    # The maximum joins the top bin.
    assert discrete[np.argmax(codes[:, i]), i] == 7


def test_histogram_discretize_by_hand():
  # Range [0, 10], 5 bins of width 2: edges 0, 2, 4, 6, 8 (10 dropped).
  codes = np.array([[0.], [1.9], [2.], [5.], [9.99], [10.]])
  np.testing.assert_array_equal(
      mutual_info.histogram_discretize(codes, num_bins=5)[:, 0],
      [1, 1, 2, 3, 5, 5])


def test_histogram_discretize_constant_code_has_one_label():
  discrete = mutual_info.histogram_discretize(np.full((9, 2), 4.2))
  assert np.unique(discrete[:, 0]).size == 1
  assert np.unique(discrete[:, 1]).size == 1


def test_histogram_discretize_invariant_to_per_code_affine_maps():
  rng = np.random.default_rng(1)
  codes = rng.normal(size=(500, 4))
  discrete = mutual_info.histogram_discretize(codes)
  # Powers of two scale exactly; the edges scale with the data.
  np.testing.assert_array_equal(
      mutual_info.histogram_discretize(codes * [2., 0.25, 8., 1.]), discrete)
  shifted = mutual_info.histogram_discretize(codes * [3.7, 0.2, 11., 1.] +
                                             [1.3, -40., 0., 1e3])
  np.testing.assert_array_equal(shifted, discrete)


@pytest.mark.parametrize('num_points,num_codes,num_factors',
                         [(503, 3, 5), (250, 6, 2), (97, 1, 4)])
def test_discrete_mutual_info_matches_sklearn_entry_by_entry(
    num_points, num_codes, num_factors):
  rng = np.random.default_rng(num_codes)
  codes = mutual_info.histogram_discretize(
      rng.normal(size=(num_points, num_codes)), num_bins=6)
  factors = _random_factors(rng, num_points, num_factors)
  # Make code 0 depend on factor num_factors - 1, so entries differ a lot.
  codes[:, 0] = factors[:, -1] * 3 + rng.integers(0, 2, num_points)
  mi = mutual_info.discrete_mutual_info(codes, factors)
  assert mi.shape == (num_codes, num_factors)
  for i in range(num_codes):
    for j in range(num_factors):
      # disentanglement_lib's argument order: factor first, code second.
      np.testing.assert_allclose(
          mi[i, j], mutual_info_score(factors[:, j], codes[:, i]),
          rtol=1e-12, atol=1e-15)
  assert np.argmax(mi[0]) == num_factors - 1


def test_discrete_mutual_info_golden_by_hand():
  # f0 = 0 0 1 1, f1 = 0 1 0 1; c0 = f0, c1 = 0 1 1 1, c2 constant.
  # I(c0; f0) = H(f0) = ln 2; c0 and f1 are independent in the sample: 0.
  # I(c1; f0): p(f0, c1) = 1/4 at (0, 0), 1/4 at (0, 1), 1/2 at (1, 1);
  #   p(f0) = 1/2, 1/2; p(c1) = 1/4, 3/4:
  #   1/4 ln(1/4 / (1/2·1/4)) + 1/4 ln(1/4 / (1/2·3/4))
  #   + 1/2 ln(1/2 / (1/2·3/4)) = 1/4 ln 2 + 1/4 ln(2/3) + 1/2 ln(4/3)
  #   = 3/2 ln 2 − 3/4 ln 3 ≈ 0.2158 nats;
  #   the pairs (f1, c1) are the same multiset, so I(c1; f1) is the same.
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  codes = np.array([[0, 0, 5], [0, 1, 5], [1, 1, 5], [1, 1, 5]])
  a = 1.5 * np.log(2) - 0.75 * np.log(3)
  np.testing.assert_allclose(mutual_info.discrete_mutual_info(codes, factors),
                             [[np.log(2), 0.], [a, a], [0., 0.]],
                             rtol=1e-12, atol=1e-15)


def test_discrete_mutual_info_is_in_nats_and_symmetric_in_labels():
  # A code equal to a factor with 5 equiprobable values: I = H = ln 5.
  factor = np.repeat(np.arange(5), 4)[:, None]
  mi = mutual_info.discrete_mutual_info(factor * 7 + 1, factor)
  np.testing.assert_allclose(mi, [[np.log(5)]], rtol=1e-12)


def test_discrete_entropy_golden_by_hand():
  # y0 = 0 0 0 1: H = −(3/4 ln 3/4 + 1/4 ln 1/4) = ln 4 − 3/4 ln 3 ≈ 0.5623.
  # y1 = 0 1 2 3 (4 distinct values): ln 4. y2 constant: 0.
  factors = np.array([[0, 0, 2], [0, 1, 2], [0, 2, 2], [1, 3, 2]])
  np.testing.assert_allclose(
      mutual_info.discrete_entropy(factors),
      [np.log(4) - 0.75 * np.log(3), np.log(4), 0.], rtol=1e-12, atol=1e-15)


def test_discrete_entropy_is_mutual_info_of_a_factor_with_itself():
  rng = np.random.default_rng(3)
  factors = _random_factors(rng, 301, 3)
  np.testing.assert_allclose(
      mutual_info.discrete_entropy(factors),
      np.diag(mutual_info.discrete_mutual_info(factors, factors)), rtol=1e-12)


def test_inputs_must_be_two_dimensional_with_matching_points():
  with pytest.raises(ValueError, match='2-D'):
    mutual_info.histogram_discretize(np.zeros(5))
  with pytest.raises(ValueError, match='points'):
    mutual_info.discrete_mutual_info(np.zeros((5, 2)), np.zeros((4, 2)))
