"""Modularity and explicitness on known answers and hand-worked MI matrices."""

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from bvae_jax.metrics import modularity_explicitness as me

LN2, LN3 = np.log(2), np.log(3)


def _factors(rng, num_points, sizes=(2, 3, 4)):
  return np.stack([rng.integers(0, k, num_points) for k in sizes], axis=1)


def _split(rng, codes_fn, num_train=600, num_test=300, sizes=(2, 3, 4)):
  factors_train = _factors(rng, num_train, sizes)
  factors_test = _factors(rng, num_test, sizes)
  return (codes_fn(factors_train), factors_train, codes_fn(factors_test),
          factors_test)


def test_modularity_golden_matrices_by_hand():
  # Code 0, MI (3, 1, 1): δ = (9 + 1 + 1 − 9) / (9 · (3 − 1)) = 1/9, score 8/9.
  # Code 1, MI (0, 2, 0): δ = 0, score 1. Mean 17/18.
  np.testing.assert_allclose(me.modularity(np.array([[3., 1., 1.],
                                                     [0., 2., 0.]])),
                             17 / 18, rtol=1e-12)
  # Equal MI with all 3 factors: δ = 2/2 = 1, score 0. A dead code scores 0.
  assert me.modularity(np.array([[1., 1., 1.], [0., 0., 0.]])) == 0.


def test_modularity_score_golden_by_hand():
  # The MIG golden case (see test_metric_mig): MI c0 [ln 2, 0], c1 [a, a],
  # c2 [0, 0]. Scores: c0 1, c1 1 − a²/a² = 0, c2 0 (dead code): mean 1/3.
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  codes = np.array([[-3., 0., 7.], [-3., 1., 7.], [5., 1., 7.], [5., 1., 7.]])
  scores = me.modularity_explicitness(codes, factors, codes, factors, n_jobs=1)
  np.testing.assert_allclose(scores['modularity_score'], 1 / 3, rtol=1e-12)
  # Train and test are the same points here, so their explicitness agrees.
  assert (scores['explicitness_score_train'] ==
          scores['explicitness_score_test'])


def test_modularity_three_valued_factor_by_hand():
  # MI c0 [2/3 ln 2, 5/3 ln 2 − ln 3], c1 [ln 3, 0] (see test_metric_mig).
  # c0: 1 − (5/3 ln 2 − ln 3)² / (2/3 ln 2)²; c1: 1.
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]])
  codes = np.stack([[0, 0, 0, 1, 1, 1], factors[:, 0] / 2], axis=1)
  expected = (1 - ((5 / 3 * LN2 - LN3) / (2 / 3 * LN2))**2 + 1) / 2
  scores = me.modularity_explicitness(codes, factors, codes, factors, n_jobs=1)
  np.testing.assert_allclose(scores['modularity_score'], expected, rtol=1e-12)


def test_identity_representation_scores_near_one():
  rng = np.random.default_rng(0)
  # Two nuisance codes beside the three factor codes: 5 codes, 3 factors.
  scores = me.modularity_explicitness(*_split(
      rng, lambda f: np.concatenate(
          [f + 0.01 * rng.normal(size=f.shape), rng.normal(size=(len(f), 2))],
          axis=1)), n_jobs=1)
  # The nuisance codes' small sample MI is spread evenly over the factors, so
  # they score low on modularity (about 0.8 overall); the factor codes score 1.
  assert scores['modularity_score'] > 0.6
  assert scores['explicitness_score_train'] > 0.99
  assert scores['explicitness_score_test'] > 0.99
  scores = me.modularity_explicitness(*_split(
      rng, lambda f: f + 0.01 * rng.normal(size=f.shape)), n_jobs=1)
  assert scores['modularity_score'] > 0.99
  assert scores['explicitness_score_test'] > 0.99


def test_constant_codes_give_zero_modularity_and_chance_explicitness():
  rng = np.random.default_rng(1)
  scores = me.modularity_explicitness(*_split(
      rng, lambda f: np.full((len(f), 4), 2.5)), n_jobs=1)
  # Zero variance: standardised to 0, so every point gets the same
  # probabilities and each ROC-AUC is exactly 1/2.
  assert scores == {'modularity_score': 0., 'explicitness_score_train': 0.5,
                    'explicitness_score_test': 0.5}


def test_invariant_to_permuting_and_affinely_rescaling_codes():
  rng = np.random.default_rng(2)
  mixing = rng.normal(size=(3, 5))
  codes_train, f_train, codes_test, f_test = _split(
      rng, lambda f: f @ mixing + 0.5 * rng.normal(size=(len(f), 5)))
  reference = me.modularity_explicitness(codes_train, f_train, codes_test,
                                         f_test, n_jobs=1)
  assert 0.1 < reference['explicitness_score_test'] < 0.99
  permutation = [2, 4, 0, 1, 3]
  scale, shift = np.array([3., 0.1, -2., 50., 1.]), rng.normal(size=5)
  for transform in (lambda c: c[:, permutation], lambda c: c * scale + shift):
    scores = me.modularity_explicitness(transform(codes_train), f_train,
                                        transform(codes_test), f_test, n_jobs=1)
    for key, value in reference.items():
      np.testing.assert_allclose(scores[key], value, rtol=1e-6, err_msg=key)


def test_test_codes_are_standardised_with_training_statistics():
  rng = np.random.default_rng(3)
  codes_train, f_train, codes_test, f_test = _split(
      rng, lambda f: f + 0.8 * rng.normal(size=f.shape))
  codes_test = codes_test * 1.5 + 0.7  # A shifted, wider test distribution.
  scores = me.modularity_explicitness(codes_train, f_train, codes_test, f_test,
                                      n_jobs=1)
  mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)  # ddof=0.
  train, test = (codes_train - mean) / std, (codes_test - mean) / std
  by_hand = np.array([
      me.explicitness_per_factor(train, f_train[:, j], test, f_test[:, j])
      for j in range(3)])
  assert scores['explicitness_score_train'] == np.mean(by_hand[:, 0])
  assert scores['explicitness_score_test'] == np.mean(by_hand[:, 1])
  # Standardising the test codes with their own statistics would differ.
  own = (codes_test - codes_test.mean(axis=0)) / codes_test.std(axis=0)
  own_stats = [me.explicitness_per_factor(train, f_train[:, j], own,
                                          f_test[:, j])[1] for j in range(3)]
  assert scores['explicitness_score_test'] != np.mean(own_stats)


def test_classifier_is_liblinear_one_vs_rest_as_old_sklearn_default():
  # disentanglement_lib's LogisticRegression() was liblinear, one-vs-rest:
  # per class a binary fit, sigmoid of its decision, rows rescaled to sum 1.
  rng = np.random.default_rng(4)
  x = rng.normal(size=(400, 3))
  y = np.argmax(x @ rng.normal(size=(3, 3)) + rng.normal(size=(400, 3)), axis=1)
  binary = [LogisticRegression(solver='liblinear', random_state=0).fit(
      x, y == k) for k in range(3)]
  sigmoids = expit(np.stack([b.decision_function(x) for b in binary], axis=1))
  classifier = me._classifier  # pylint: disable=protected-access
  np.testing.assert_allclose(
      classifier().fit(x, y).predict_proba(x),
      sigmoids / sigmoids.sum(axis=1, keepdims=True), rtol=1e-12)
  # Two classes: a single binary fit, as LogisticRegression itself.
  np.testing.assert_allclose(classifier().fit(x, y == 0).predict_proba(x),
                             binary[0].predict_proba(x), rtol=1e-12)


def test_processes_do_not_change_the_result():
  rng = np.random.default_rng(5)
  split = _split(rng, lambda f: f @ rng.normal(size=(3, 4)) +
                 rng.normal(size=(len(f), 4)))
  assert (me.modularity_explicitness(*split, n_jobs=1) ==
          me.modularity_explicitness(*split, n_jobs=2))


def test_explicitness_when_a_split_lacks_a_value():
  # disentanglement_lib's per-split MultiLabelBinarizer fails when the test
  # split misses a value the classifier saw; ours scores the values present,
  # and equals the per-split binarizer whenever both splits hold every value.
  from sklearn import metrics as sk_metrics  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  factor_train = rng.randint(4, size=200)
  codes_train = factor_train[:, None] + rng.normal(size=(200, 2))
  factor_test = np.array([0, 1, 2, 0, 1, 2, 2, 1])  # Never 3.
  codes_test = factor_test[:, None] + rng.normal(size=(8, 2))
  train_roc, test_roc = me.explicitness_per_factor(
      codes_train, factor_train, codes_test, factor_test)
  assert 0.5 < test_roc <= 1.0
  clf = me._classifier().fit(codes_train, factor_train)
  reference = sk_metrics.roc_auc_score(
      preprocessing.MultiLabelBinarizer().fit_transform(factor_train[:, None]),
      clf.predict_proba(codes_train))
  assert train_roc == pytest.approx(reference, abs=1e-12)
