"""Tests of metrics.beta_vae against a per-point transcription of
disentanglement_lib and on representations whose answer is known."""

import numpy as np
import pytest
from test_metric_sampling import Fake, NoisyFake, flat, linear, same_state

from bvae_jax.metrics import beta_vae

SMALL = dict(batch_size=8, num_train=150, num_eval=60)


def dislib_generate_training_sample(ground_truth_data, representation_function,
                                    batch_size, random_state):
  """disentanglement_lib's beta_vae._generate_training_sample, transcribed."""
  index = random_state.randint(ground_truth_data.num_factors)
  factors1 = ground_truth_data.sample_factors(batch_size, random_state)
  factors2 = ground_truth_data.sample_factors(batch_size, random_state)
  factors2[:, index] = factors1[:, index]
  observation1 = ground_truth_data.sample_observations_from_factors(
      factors1, random_state)
  observation2 = ground_truth_data.sample_observations_from_factors(
      factors2, random_state)
  representation1 = representation_function(observation1)
  representation2 = representation_function(observation2)
  feature_vector = np.mean(np.abs(representation1 - representation2), axis=0)
  return index, feature_vector


def dislib_generate_training_batch(ground_truth_data, representation_function,
                                   batch_size, num_points, random_state):
  """disentanglement_lib's beta_vae._generate_training_batch, transcribed."""
  points = None
  labels = np.zeros(num_points, dtype=np.int64)
  for i in range(num_points):
    labels[i], feature_vector = dislib_generate_training_sample(
        ground_truth_data, representation_function, batch_size, random_state)
    if points is None:
      points = np.zeros((num_points, feature_vector.shape[0]))
    points[i, :] = feature_vector
  return points, labels


def fit_liblinear(*args, **kwargs):
  """sklearn's private `_fit_liblinear`: LogisticRegression.fit before 0.22."""
  # Imported, not importorskip'ed: requirements.txt pins scikit-learn 1.9.x,
  # which has it; a move would fail this test rather than skip it silently.
  from sklearn.svm import _base as svm_base  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=protected-access
  return svm_base._fit_liblinear(*args, **kwargs)


def dislib_beta_vae(ground_truth_data, representation_function, random_state,
                    batch_size, num_train, num_eval):
  """compute_beta_vae_sklearn with sklearn < 0.22's LogisticRegression.

  That fit was `_fit_liblinear(...)` with sklearn's defaults of the time
  (liblinear's own one-vs-rest), still in sklearn as a private function.
  """
  train_points, train_labels = dislib_generate_training_batch(
      ground_truth_data, representation_function, batch_size, num_train,
      random_state)
  coef, intercept, _ = fit_liblinear(
      train_points, train_labels, C=1.0, fit_intercept=True,
      intercept_scaling=1, class_weight=None, penalty='l2', dual=False,
      verbose=0, max_iter=100, tol=1e-4, random_state=random_state)
  classes = np.unique(train_labels)

  def predict(points):
    scores = points @ coef.T + intercept
    if len(classes) == 2:
      return classes[(scores[:, 0] > 0).astype(int)]
    return classes[scores.argmax(axis=1)]

  train_accuracy = np.mean(predict(train_points) == train_labels)
  eval_points, eval_labels = dislib_generate_training_batch(
      ground_truth_data, representation_function, batch_size, num_eval,
      random_state)
  eval_accuracy = np.mean(predict(eval_points) == eval_labels)
  return {'train_accuracy': train_accuracy, 'eval_accuracy': eval_accuracy}


# 5 codes from 3 factors, partly mixed, so that the classifier is imperfect.
MIXING = np.random.RandomState(9).randn(3, 5) + 2 * np.eye(3, 5)


@pytest.mark.parametrize('fake', [Fake(), NoisyFake()])
@pytest.mark.parametrize('images_per_call', [40, 4096])
def test_batched_features_equal_dislibs_per_point_loop(fake, images_per_call):
  # 40 images per call is 2 points of 2 x 8 images, plus a remainder.
  rs, reference_rs = np.random.RandomState(0), np.random.RandomState(0)
  # pylint: disable-next=protected-access
  points, labels = beta_vae._generate_training_batch(
      fake, linear(MIXING), 8, 25, rs, images_per_call)
  reference_points, reference_labels = dislib_generate_training_batch(
      fake, linear(MIXING), 8, 25, reference_rs)
  assert points.shape == (25, 5) and points.dtype == np.float64
  np.testing.assert_array_equal(labels, reference_labels)
  np.testing.assert_array_equal(points, reference_points)
  assert same_state(rs, reference_rs)


@pytest.mark.parametrize('fake', [Fake(), NoisyFake()])
def test_score_equals_dislibs(fake):
  result = beta_vae.beta_vae_score(fake, linear(MIXING),
                                   np.random.RandomState(3), **SMALL)
  reference = dislib_beta_vae(fake, linear(MIXING), np.random.RandomState(3),
                              **SMALL)
  assert set(result) == {'train_accuracy', 'eval_accuracy'}
  assert result == reference
  assert 0.4 < result['eval_accuracy'] < 1.


def test_classifier_equals_liblinears_one_vs_rest():
  rs = np.random.RandomState(0)
  labels = rs.randint(4, size=300)
  points = rs.rand(300, 6) + 0.3 * np.eye(4, 6)[labels]
  classifier = beta_vae.fit_classifier(points, labels,
                                       np.random.RandomState(1))
  coef, intercept, _ = fit_liblinear(
      points, labels, 1.0, True, 1, None, 'l2', False, 0, 100, 1e-4,
      np.random.RandomState(1))
  np.testing.assert_allclose(
      np.vstack([m.coef_ for m in classifier.models]), coef, rtol=1e-9)
  np.testing.assert_allclose(
      np.hstack([m.intercept_ for m in classifier.models]), intercept,
      rtol=1e-9)
  np.testing.assert_array_equal(classifier.predict(points),
                                np.argmax(points @ coef.T + intercept, 1))


def test_the_fit_draws_one_seed_before_the_evaluation_points():
  rs = np.random.RandomState(5)
  beta_vae.fit_classifier(np.eye(3), np.arange(3), rs)
  expected = np.random.RandomState(5)
  expected.randint(np.iinfo(np.int32).max)
  assert same_state(rs, expected)


def test_two_factors_use_one_binary_model():
  labels = np.array([0, 1] * 20)
  points = np.column_stack([labels + 0.1, 1. - labels])
  classifier = beta_vae.fit_classifier(points, labels,
                                       np.random.RandomState(0))
  assert len(classifier.models) == 1
  np.testing.assert_array_equal(classifier.predict(points), labels)


def test_identity_scores_one():
  # The fixed factor's code differs by exactly 0 within each pair; every
  # other code by about 1/3: a linear classifier separates them all.
  result = beta_vae.beta_vae_score(Fake(), flat, np.random.RandomState(0),
                                   **SMALL)
  assert result == {'train_accuracy': 1., 'eval_accuracy': 1.}


def test_permuting_codes_keeps_the_score():
  permutation = np.eye(5)[[2, 4, 0, 3, 1]].T
  result = beta_vae.beta_vae_score(
      Fake(), linear(MIXING), np.random.RandomState(1), **SMALL)
  permuted = beta_vae.beta_vae_score(
      Fake(), linear(MIXING @ permutation), np.random.RandomState(1), **SMALL)
  assert permuted == pytest.approx(result, abs=1 / SMALL['num_eval'])


def test_constant_codes_score_chance():
  # All features 0: the classifier predicts the one class of the largest
  # intercept, right for about a third of the points.
  result = beta_vae.beta_vae_score(
      Fake(), lambda x: np.zeros((len(x), 4), np.float32),
      np.random.RandomState(0), **SMALL)
  assert result['train_accuracy'] < 0.5 and result['eval_accuracy'] < 0.5
