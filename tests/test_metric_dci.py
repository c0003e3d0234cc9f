"""Tests of metrics.dci against hand-worked values and disentanglement_lib."""

import numpy as np
import pytest
from sklearn import ensemble

from bvae_jax.metrics import dci
import numpy_kernels

SIZES = (3, 4, 5)


def draw(num_points, seed, noise=0.05):
  """Factors (num_points, 3) and codes equal to them plus Gaussian noise."""
  rs = np.random.RandomState(seed)
  factors = np.stack([rs.randint(s, size=num_points) for s in SIZES], 1)
  codes = factors + noise * rs.randn(num_points, len(SIZES))
  return codes, factors


def scores(codes_train, factors_train, codes_test, factors_test, **kwargs):
  return dci.dci(codes_train, factors_train, codes_test, factors_test,
                 **kwargs)


def test_hand_worked_importance_matrix():
  # 3 codes x 2 factors; code 2 is unused.
  importance = np.array([[0.5, 0.5],
                         [0.5, 0.0],
                         [0.0, 0.0]])
  # Disentanglement, entropies base 2 (num_factors) of the rows:
  #   row 0 (1/2, 1/2): H = 1 -> 0; row 1 (1, 0): H = 0 -> 1;
  #   row 2 is 1e-11 everywhere, i.e. uniform: H = 1 -> 0.
  #   Weights: row sums / total = 1/1.5, 0.5/1.5, 0 = 2/3, 1/3, 0.
  #   D = 2/3 * 0 + 1/3 * 1 + 0 * 0 = 1/3.
  np.testing.assert_allclose(dci.disentanglement_per_code(importance),
                             [0., 1., 0.], atol=1e-8)
  assert dci.disentanglement(importance) == pytest.approx(1 / 3, abs=1e-8)
  # Completeness, entropies base 3 (num_codes) of the columns:
  #   column 0 (1/2, 1/2, 0): H = log 2 / log 3 = 0.6309298 -> 0.3690702;
  #   column 1 (1, 0, 0): H = 0 -> 1.
  #   Weights: column sums / total = 1/1.5, 0.5/1.5 = 2/3, 1/3.
  #   C = 2/3 * 0.3690702 + 1/3 * 1 = 0.5793801.
  np.testing.assert_allclose(dci.completeness_per_factor(importance),
                             [0.3690702, 1.], atol=1e-7)
  assert dci.completeness(importance) == pytest.approx(0.5793801, abs=1e-7)


def test_all_zero_importance_scores_zero():
  # Every row and column is uniform (entropy 1), weighted uniformly.
  importance = np.zeros((4, 2))
  assert dci.disentanglement(importance) == pytest.approx(0., abs=1e-12)
  assert dci.completeness(importance) == pytest.approx(0., abs=1e-12)


def dislib_compute_importance_gbt(x_train, y_train, x_test, y_test):
  """disentanglement_lib's compute_importance_gbt, transcribed.

  Its layout: x (num_codes, num_points), y (num_factors, num_points). The only
  change: the classifier's random_state, unset there, is pinned as ours is.
  """
  num_factors = y_train.shape[0]
  num_codes = x_train.shape[0]
  importance_matrix = np.zeros(shape=[num_codes, num_factors],
                               dtype=np.float64)
  train_loss = []
  test_loss = []
  for i in range(num_factors):
    model = ensemble.GradientBoostingClassifier(random_state=0)
    model.fit(x_train.T, y_train[i, :])
    importance_matrix[:, i] = np.abs(model.feature_importances_)
    train_loss.append(np.mean(model.predict(x_train.T) == y_train[i, :]))
    test_loss.append(np.mean(model.predict(x_test.T) == y_test[i, :]))
  return importance_matrix, np.mean(train_loss), np.mean(test_loss)


@pytest.fixture(scope='module')
def mixed_data():
  """5 codes mixing 3 factors, with noise: no ties, no perfect answer."""
  codes_train, factors_train = draw(200, 0, noise=0.3)
  codes_test, factors_test = draw(100, 1, noise=0.3)
  mix = np.random.RandomState(2).randn(3, 5)
  return codes_train @ mix, factors_train, codes_test @ mix, factors_test


@pytest.mark.slow
@numpy_kernels.requires_avx2_kernels
def test_importance_matrix_equals_dislibs_and_is_the_same_in_parallel(
    mixed_data):
  codes_train, factors_train, codes_test, factors_test = mixed_data
  reference = dislib_compute_importance_gbt(
      codes_train.T, factors_train.T, codes_test.T, factors_test.T)
  for n_jobs in (1, 2):
    importance, train_accuracy, test_accuracy = dci.importance_matrix(
        codes_train, factors_train, codes_test, factors_test, n_jobs=n_jobs)
    assert importance.shape == (5, 3)
    # metrics.gradient_boosting refits sklearn's classifier with its
    # roundings: equal here, and equal up to rounding wherever numpy's exp
    # differs from the C library's.
    np.testing.assert_allclose(importance, reference[0], rtol=1e-9,
                               atol=1e-15)
    assert train_accuracy == reference[1]
    assert test_accuracy == reference[2]


def test_importance_matrix_is_the_same_in_parallel_on_any_kernels(
    mixed_data):
  serial = dci.importance_matrix(*mixed_data, n_jobs=1)
  parallel = dci.importance_matrix(*mixed_data, n_jobs=2)
  np.testing.assert_array_equal(serial[0], parallel[0])
  assert serial[1:] == parallel[1:]


def test_codes_equal_to_factors_score_one():
  # Two extra pure-noise codes: 5 codes, 3 factors.
  codes_train, factors_train = draw(300, 0)
  codes_test, factors_test = draw(150, 1)
  noise = np.random.RandomState(3)
  result = scores(np.hstack([codes_train, noise.randn(300, 2)]), factors_train,
                  np.hstack([codes_test, noise.randn(150, 2)]), factors_test)
  assert set(result) == {'disentanglement', 'completeness',
                         'informativeness_train', 'informativeness_test'}
  assert result['informativeness_train'] == 1.
  assert result['informativeness_test'] == 1.
  assert result['disentanglement'] > 0.95
  assert result['completeness'] > 0.9


def test_duplicated_and_mixed_codes_score_lower():
  codes_train, factors_train = draw(200, 0)
  codes_test, factors_test = draw(100, 1)
  clean = scores(codes_train, factors_train, codes_test, factors_test)
  # Each factor twice, with independent noise: the importance of a factor
  # is shared by two codes, so completeness drops; disentanglement does not.
  noise = np.random.RandomState(4)
  duplicated = scores(
      np.hstack([codes_train, codes_train + 0.05 * noise.randn(200, 3)]),
      factors_train,
      np.hstack([codes_test, codes_test + 0.05 * noise.randn(100, 3)]),
      factors_test)
  assert duplicated['completeness'] < clean['completeness'] - 0.2
  assert duplicated['disentanglement'] > 0.9
  # A rotation mixes every factor into every code.
  rotation = np.linalg.qr(np.random.RandomState(5).randn(3, 3))[0]
  mixed = scores(codes_train @ rotation, factors_train,
                 codes_test @ rotation, factors_test)
  assert mixed['disentanglement'] < clean['disentanglement'] - 0.2
  assert mixed['completeness'] < clean['completeness'] - 0.2


@pytest.mark.slow
def test_permuting_codes_permutes_importance(mixed_data):
  # Only approximately: once a tree's node is split perfectly, later trees
  # fit residuals on a few samples, where several codes often give the same
  # partition. sklearn keeps the first of equal splits in a seeded random
  # order of features, so moving a code changes which one wins such ties.
  # (disentanglement_lib, unseeded, breaks them anew in every run.)
  codes_train, factors_train, codes_test, factors_test = mixed_data
  permutation = np.array([3, 0, 4, 1, 2])
  importance, train_accuracy, test_accuracy = dci.importance_matrix(
      codes_train, factors_train, codes_test, factors_test, n_jobs=1)
  permuted, permuted_train, permuted_test = dci.importance_matrix(
      codes_train[:, permutation], factors_train,
      codes_test[:, permutation], factors_test, n_jobs=1)
  np.testing.assert_allclose(permuted, importance[permutation], atol=0.02)
  assert permuted_train == pytest.approx(train_accuracy, abs=0.02)
  assert permuted_test == pytest.approx(test_accuracy, abs=0.02)
  assert dci.disentanglement(permuted) == pytest.approx(
      dci.disentanglement(importance), abs=0.02)
  assert dci.completeness(permuted) == pytest.approx(
      dci.completeness(importance), abs=0.02)


def test_transposed_inputs_are_rejected():
  codes, factors = draw(20, 0)
  with pytest.raises(ValueError, match='train'):
    dci.importance_matrix(codes.T, factors, codes, factors)
  with pytest.raises(ValueError, match='columns'):
    dci.importance_matrix(codes, factors, codes[:, :2], factors)
