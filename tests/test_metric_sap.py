"""SAP on known answers and on a hand-worked continuous case."""

import numpy as np
import pytest

from bvae_jax.metrics import sap


def _factors(rng, num_points, sizes=(2, 2, 3)):
  return np.stack([rng.integers(0, k, num_points) for k in sizes], axis=1)


def _identity(rng, factors):
  return factors + 0.01 * rng.normal(size=factors.shape)


def test_avg_diff_top_two_by_hand():
  # Columns: 0.9 − 0.4 = 0.5, 0.7 − 0.6 = 0.1, a tie 0.5 − 0.5 = 0: mean 0.2.
  matrix = np.array([[0.9, 0.2, 0.5], [0.4, 0.7, 0.5], [0.1, 0.6, 0.3]])
  np.testing.assert_allclose(sap.avg_diff_top_two(matrix), 0.2, rtol=1e-12)


def test_continuous_golden_by_hand():
  # f0 = 0 1 2 3, f1 = 0 1 1 0 (centred: f0 −1.5 −.5 .5 1.5, f1 −.5 .5 .5 −.5).
  # c0 = f0: r² 1 with f0; Σ(c0 − 1.5)(f1 − .5) = .75 − .25 + .25 − .75 = 0.
  # c1 = 0 0 1 1 (centred ±.5): with f0, Σ = .75 + .25 + .25 + .75 = 2,
  #   Σ(c1 − .5)² = 1, Σ(f0 − 1.5)² = 5, r² = 2² / (1 · 5) = 0.8; with f1, 0.
  # c2 = 3 0 0 3 = 3(1 − f1): r² 1 with f1; with f0,
  #   Σ = 1.5(−1.5) − 1.5(−.5) − 1.5(.5) + 1.5(1.5) = 0.
  # c3 constant: variance 0 <= 1e-12, score 0.
  # Score matrix [[1, 0], [.8, 0], [0, 1], [0, 0]]: SAP = ((1 − .8) + 1) / 2.
  factors = np.array([[0, 0], [1, 1], [2, 1], [3, 0]])
  codes = np.array([[0., 0., 3., 5.], [1., 0., 0., 5.], [2., 1., 0., 5.],
                    [3., 1., 3., 5.]])
  np.testing.assert_allclose(
      sap.score_matrix(codes, factors, None, None, continuous_factors=True),
      [[1., 0.], [0.8, 0.], [0., 1.], [0., 0.]], atol=1e-12)
  np.testing.assert_allclose(
      sap.sap(codes, factors, None, None, continuous_factors=True)['SAP_score'],
      0.6, rtol=1e-12)


def test_continuous_score_is_squared_pearson_correlation():
  # Non-square: 4 codes, 3 factors, 203 points.
  rng = np.random.default_rng(0)
  factors = _factors(rng, 203, sizes=(5, 3, 7))
  codes = factors @ rng.normal(size=(3, 4)) + rng.normal(size=(203, 4))
  matrix = sap.score_matrix(codes, factors, None, None, continuous_factors=True)
  assert matrix.shape == (4, 3)
  for i in range(4):
    for j in range(3):
      np.testing.assert_allclose(
          matrix[i, j], np.corrcoef(codes[:, i], factors[:, j])[0, 1]**2,
          rtol=1e-10)


def test_identity_scores_high_and_mixing_scores_low():
  rng = np.random.default_rng(1)
  f_train, f_test = _factors(rng, 600), _factors(rng, 300)
  matrix = sap.score_matrix(_identity(rng, f_train), f_train,
                            _identity(rng, f_test), f_test, n_jobs=1)
  # Each code predicts its own binary factor perfectly, the others at chance.
  np.testing.assert_allclose(np.diag(matrix)[:2], 1.)
  assert sap.avg_diff_top_two(matrix) > 0.4
  rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
  mixed = sap.sap(_identity(rng, f_train) @ rotation, f_train,
                  _identity(rng, f_test) @ rotation, f_test, n_jobs=1)
  assert mixed['SAP_score'] < sap.avg_diff_top_two(matrix) - 0.2


@pytest.mark.parametrize('continuous', [False, True])
def test_constant_codes_give_zero(continuous):
  rng = np.random.default_rng(2)
  f_train, f_test = _factors(rng, 300), _factors(rng, 200)
  codes_train, codes_test = np.full((300, 3), 1.5), np.full((200, 3), 1.5)
  assert sap.sap(codes_train, f_train, codes_test, f_test, continuous,
                 n_jobs=1) == {'SAP_score': 0.}


def test_duplicated_latent_gives_zero_gap_for_its_factor():
  rng = np.random.default_rng(3)
  f_train, f_test = _factors(rng, 400), _factors(rng, 200)
  codes_train, codes_test = _identity(rng, f_train), _identity(rng, f_test)
  matrix = sap.score_matrix(codes_train[:, [0, 0, 1, 2]], f_train,
                            codes_test[:, [0, 0, 1, 2]], f_test, n_jobs=1)
  top_two = np.sort(matrix, axis=0)[-2:]
  assert top_two[1, 0] == top_two[0, 0]  # Factor 0: both copies tie.
  assert np.all(top_two[1, 1:] - top_two[0, 1:] > 0.2)


def test_discrete_score_is_test_accuracy():
  # Test labels flipped: a code that predicts its factor perfectly on the
  # training points gets it wrong on every test point.
  rng = np.random.default_rng(4)
  factors = _factors(rng, 300, sizes=(2, 2))
  codes = _identity(rng, factors)
  matrix = sap.score_matrix(codes, factors, codes, 1 - factors, n_jobs=1)
  np.testing.assert_allclose(np.diag(matrix), 0.)


def test_invariant_to_permuting_codes():
  rng = np.random.default_rng(5)
  f_train, f_test = _factors(rng, 400), _factors(rng, 200)
  mixing = rng.normal(size=(3, 4))
  codes_train = f_train @ mixing + rng.normal(size=(400, 4))
  codes_test = f_test @ mixing + rng.normal(size=(200, 4))
  reference = sap.sap(codes_train, f_train, codes_test, f_test, n_jobs=1)
  permutation = [2, 0, 3, 1]
  assert sap.sap(codes_train[:, permutation], f_train,
                 codes_test[:, permutation], f_test, n_jobs=1) == reference


def test_processes_do_not_change_the_result():
  rng = np.random.default_rng(6)
  f_train, f_test = _factors(rng, 500, sizes=(2, 3, 4)), _factors(rng, 300,
                                                                  (2, 3, 4))
  mixing = rng.normal(size=(3, 5))
  codes_train = f_train @ mixing + rng.normal(size=(500, 5))
  codes_test = f_test @ mixing + rng.normal(size=(300, 5))
  np.testing.assert_array_equal(
      sap.score_matrix(codes_train, f_train, codes_test, f_test, n_jobs=1),
      sap.score_matrix(codes_train, f_train, codes_test, f_test, n_jobs=2))


def test_needs_two_codes():
  with pytest.raises(ValueError, match='two codes'):
    sap.sap(np.zeros((10, 1)), np.zeros((10, 2), dtype=int), None, None, True)
