"""The β-VAE disentanglement score.

Higgins et al. 2017, "β-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework", as computed by disentanglement_lib's
`evaluation/metrics/beta_vae.py` (`compute_beta_vae_sklearn`,
`_generate_training_batch`, `_generate_training_sample`; Locatello et al.
2019). Followed exactly:

* Each point: a factor index uniform in [0, num_factors), two batches of
  `batch_size` factor rows, the chosen factor copied from the first batch to
  the second, both rendered and encoded; the feature is the mean over the
  batch of |z1 - z2| and the label the factor index. The random draws come
  in disentanglement_lib's order (index, batch 1, batch 2, rendering of 1,
  rendering of 2, next point), so the same RandomState gives the same
  factors; rendering and encoding are batched over many points
  (`sampling.point_features`).
* A logistic regression on num_train points, then num_eval new points from
  the same RandomState; scores are the accuracies on both.

The classifier. disentanglement_lib builds
`LogisticRegression(random_state=random_state)` with the metric's own
RandomState. With the sklearn of its published results (< 0.22) that meant
liblinear, one-vs-rest, L2 penalty with C=1, tol=1e-4, max_iter=100, an
intercept penalised like a weight (intercept_scaling=1), and a fit that drew
one seed, `random_state.randint(2**31 - 1)`, before the evaluation points
were drawn. sklearn >= 0.22 switched the default to lbfgs multinomial, which
draws nothing, and the sklearn installed here (1.9) refuses several classes
with liblinear. We keep the published behaviour: we draw the seed in the
same place (so the evaluation points are the ones disentanglement_lib drew),
fit one binary liblinear model per class (one model for two classes, as
liblinear does) and predict the class of the highest decision value, the
first one on ties. The tests compare this with sklearn's `_fit_liblinear`,
the old code path, still in sklearn as a private function: coefficients
agree to 1e-9 and the scores exactly. What may remain is liblinear's own
version: sklearn bundled an older one then.
"""

import dataclasses

import numpy as np
from sklearn import linear_model

from bvae_jax.metrics import sampling

# LogisticRegression as sklearn < 0.22 built it by default (see the module
# docstring); l1_ratio=0 is the L2 penalty. The seed is set per fit.
LOGISTIC_PARAMS = dict(
    solver='liblinear', C=1.0, l1_ratio=0.0, dual=False, tol=1e-4,
    fit_intercept=True, intercept_scaling=1.0, class_weight=None,
    max_iter=100)


def beta_vae_score(ground_truth, representation_fn, random_state,
                   batch_size=64, num_train=10000, num_eval=5000,
                   images_per_call=4096):
  """β-VAE score with disentanglement_lib's definition and defaults.

  Args:
    ground_truth: a `GroundTruthData`.
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    random_state: np.random.RandomState; the only source of randomness.
    batch_size: pairs of observations per point.
    num_train: points to fit the classifier.
    num_eval: points to evaluate it.
    images_per_call: images per call of `representation_fn` (whole points);
      changes no number.

  Returns:
    {'train_accuracy', 'eval_accuracy'}, floats.
  """
  fit = fit_and_evaluate(ground_truth, representation_fn, random_state,
                         batch_size, num_train, num_eval, images_per_call)
  return {'train_accuracy': fit.train_accuracy,
          'eval_accuracy': fit.eval_accuracy}


@dataclasses.dataclass
class ScoreFit:
  """What is behind a β-VAE score: the classifier and its evaluation.

  Attributes:
    classifier: the fitted OneVsRestLogistic.
    train_accuracy: its accuracy on the training points.
    eval_accuracy: its accuracy on the evaluation points (the score).
    eval_labels: (num_eval,) the factor index of each evaluation point.
    eval_predictions: (num_eval,) the classifier's guess for each.
  """
  classifier: 'OneVsRestLogistic'
  train_accuracy: float
  eval_accuracy: float
  eval_labels: np.ndarray
  eval_predictions: np.ndarray

  def per_factor_accuracy(self, num_factors: int) -> np.ndarray:
    """(num_factors,) accuracy on the evaluation points of each factor
    index; nan for a factor index no evaluation point has."""
    accuracy = np.full(num_factors, np.nan)
    for factor in range(num_factors):
      chosen = self.eval_labels == factor
      if chosen.any():
        accuracy[factor] = np.mean(self.eval_predictions[chosen] == factor)
    return accuracy


def fit_and_evaluate(ground_truth, representation_fn, random_state,
                     batch_size=64, num_train=10000, num_eval=5000,
                     images_per_call=4096) -> ScoreFit:
  """`beta_vae_score`, keeping the classifier and its per-point guesses.

  Draws exactly what `beta_vae_score` draws, so `eval_accuracy` is its
  score, bit for bit. Arguments as `beta_vae_score`.
  """
  train_points, train_labels = _generate_training_batch(
      ground_truth, representation_fn, batch_size, num_train, random_state,
      images_per_call)
  classifier = fit_classifier(train_points, train_labels, random_state)
  train_accuracy = np.mean(classifier.predict(train_points) == train_labels)
  eval_points, eval_labels = _generate_training_batch(
      ground_truth, representation_fn, batch_size, num_eval, random_state,
      images_per_call)
  eval_predictions = classifier.predict(eval_points)
  eval_accuracy = np.mean(eval_predictions == eval_labels)
  return ScoreFit(classifier, float(train_accuracy), float(eval_accuracy),
                  eval_labels, eval_predictions)


def draw_point(ground_truth, batch_size, random_state):
  """One point's label and factor batches, drawn as disentanglement_lib does.

  Returns:
    (factor index, (factors1, factors2)), each (batch_size, num_factors),
    the factor index's column equal in both.
  """
  index = random_state.randint(ground_truth.num_factors)
  factors1 = ground_truth.sample_factors(batch_size, random_state)
  factors2 = ground_truth.sample_factors(batch_size, random_state)
  factors2[:, index] = factors1[:, index]
  return index, (factors1, factors2)


def pair_features(codes):
  """Mean |z1 - z2| per point: codes (points, 2 * batch, num_codes)."""
  batch = codes.shape[1] // 2
  return np.mean(np.abs(codes[:, :batch] - codes[:, batch:]), axis=1)


def _generate_training_batch(ground_truth, representation_fn, batch_size,
                             num_points, random_state, images_per_call):
  labels, features = sampling.point_features(
      ground_truth, representation_fn,
      lambda rs: draw_point(ground_truth, batch_size, rs), pair_features,
      num_points, random_state, images_per_point=2 * batch_size,
      images_per_call=images_per_call)
  # disentanglement_lib stores the features in a float64 array.
  return features.astype(np.float64), labels


class OneVsRestLogistic:
  """Liblinear logistic regression, one binary model per class.

  Attributes:
    classes: sorted labels seen in training.
    models: one fitted binary LogisticRegression per class (a single one,
      for the larger label, when there are two classes).
  """

  def __init__(self, classes, models):
    self.classes = classes
    self.models = models

  def decision_function(self, points):
    return np.column_stack([m.decision_function(points) for m in self.models])

  def code_weights(self) -> np.ndarray:
    """(num_models, num_codes) each binary model's weight on each code's
    |z1 - z2| feature; row k is the model of `positive_classes()[k]`."""
    return np.stack([m.coef_[0] for m in self.models])

  def positive_classes(self) -> np.ndarray:
    """The class each of `models` separates from the rest."""
    return positive_classes(self.classes)

  def predict(self, points):
    scores = self.decision_function(points)
    if len(self.classes) == 2:
      return self.classes[(scores[:, 0] > 0).astype(np.int64)]
    return self.classes[np.argmax(scores, axis=1)]


def positive_classes(classes: np.ndarray) -> np.ndarray:
  """The classes that get a binary model: liblinear fits one model, for the
  larger label, when there are two classes, else one per class."""
  return classes[1:] if len(classes) == 2 else classes


def fit_classifier(points, labels, random_state):
  """Fits the classifier, drawing the one seed sklearn < 0.22 drew.

  Raises:
    ValueError: when the labels hold a single class (liblinear needs two).
  """
  seed = random_state.randint(np.iinfo(np.int32).max)
  classes = np.unique(labels)
  if len(classes) < 2:
    raise ValueError(f'the classifier needs at least two factor indices '
                     f'among the training labels, got {classes.tolist()}')
  models = [
      linear_model.LogisticRegression(random_state=seed, **LOGISTIC_PARAMS)
      .fit(points, labels == positive)
      for positive in positive_classes(classes)]
  return OneVsRestLogistic(classes, models)


# The suite's entry point (the protocol is in bvae_jax/metrics/__init__.py).
SUITE_POSITION = 50
USES_SHARED_CODES = False


def image_count(eval_config) -> int:
  """Images `compute` encodes: two batches of `batch_size` per point."""
  c = eval_config
  return 2 * c.batch_size * (c.num_train + c.num_test)


def compute(inputs: sampling.MetricInputs, eval_config) -> dict[str, float]:
  """`beta_vae_score` with its own `RandomState(eval_config.seed)`.

  disentanglement_lib seeds every metric alike, so this draws the same
  random numbers whatever else the suite computes.
  """
  c = eval_config
  return beta_vae_score(
      inputs.ground_truth, inputs.representation_fn,
      np.random.RandomState(c.seed), batch_size=c.batch_size,
      num_train=c.num_train, num_eval=c.num_test)
