"""Modularity and explicitness.

Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the
F-statistic loss", NeurIPS (Sec. 3), as disentanglement_lib computes them
(disentanglement_lib/evaluation/metrics/modularity_explicitness.py,
`compute_modularity_explicitness`; Locatello et al. 2019).

Modularity, per code i, is 1 − δ_i with
δ_i = (Σ_j m_ij² − max_j m_ij²) / (max_j m_ij² · (num_factors − 1)),
m the MI of the discretised *training* codes with the factors (see
`mutual_info`), then the mean over codes. Explicitness of a factor is the
ROC-AUC of a logistic regression predicting it from all codes, one-vs-rest per
value and macro-averaged; the score is the mean over factors, on train and test
points.

Choices followed from disentanglement_lib:

* A code with zero MI to every factor (e.g. a constant one) gets modularity 0,
  not the 0/0 of the formula; the mean still counts it.
* With a single factor the formula divides by num_factors − 1 = 0: nan.
* Codes are standardised with the training mean and (population, ddof=0)
  standard deviation, and the test codes with those same statistics.
* The classifier is LogisticRegression() with the defaults of the scikit-learn
  of disentanglement_lib's time (before 0.22): liblinear, L2, C=1, tol=1e-4,
  max_iter=100, intercept (penalised, intercept_scaling=1), one-vs-rest. Current
  scikit-learn only offers liblinear's one-vs-rest through OneVsRestClassifier,
  whose predict_proba is the same (per-class sigmoids, rows rescaled to sum
  to 1). Fits agree with the old ones up to the solver's tolerance.
* ROC-AUC targets come from MultiLabelBinarizer over the split's own values,
  so every training value must also occur in the test split.

Differences from disentanglement_lib, where it would fail instead:

* A code with zero training variance is left unscaled (divided by 1) and so
  standardises to 0; disentanglement_lib divides by 0 and the classifier then
  rejects the NaNs.
"""

import joblib
import numpy as np
from sklearn import linear_model
from sklearn import metrics
from sklearn import multiclass

from bvae_jax.metrics import mutual_info
from bvae_jax.metrics import sampling


def modularity(mutual_information: np.ndarray) -> float:
  """Mean modularity of the codes from their MI with the factors.

  Args:
    mutual_information: (num_codes, num_factors) MI.

  Returns:
    Mean over codes of 1 − δ_i (0 for codes with no MI to any factor).
  """
  squared_mi = np.square(mutual_information)
  max_squared_mi = np.max(squared_mi, axis=1)
  numerator = np.sum(squared_mi, axis=1) - max_squared_mi
  denominator = max_squared_mi * (squared_mi.shape[1] - 1.)
  # Codes with max 0 are 0/0 here and overwritten just below.
  with np.errstate(invalid='ignore', divide='ignore'):
    score = 1. - numerator / denominator
  score[max_squared_mi == 0.] = 0.
  return float(np.mean(score))


def _standardise(codes: np.ndarray, mean: np.ndarray,
                 std: np.ndarray) -> np.ndarray:
  """Codes with `mean` removed and divided by `std` (1 where `std` is 0)."""
  return (codes - mean) / np.where(std == 0, 1, std)


def _classifier() -> multiclass.OneVsRestClassifier:
  """disentanglement_lib's LogisticRegression(), its defaults pinned."""
  return multiclass.OneVsRestClassifier(linear_model.LogisticRegression(
      solver='liblinear', C=1.0, tol=1e-4, max_iter=100, fit_intercept=True,
      intercept_scaling=1.0, class_weight=None, random_state=0))


def explicitness_per_factor(codes_train: np.ndarray, factor_train: np.ndarray,
                            codes_test: np.ndarray,
                            factor_test: np.ndarray) -> tuple[float, float]:
  """ROC-AUC of a logistic regression predicting one factor from all codes.

  Args:
    codes_train: (num_train, num_codes) standardised codes.
    factor_train: (num_train,) one factor's values.
    codes_test: (num_test, num_codes) codes, standardised with train statistics.
    factor_test: (num_test,) the factor's values.

  Returns:
    (train ROC-AUC, test ROC-AUC), one-vs-rest and macro-averaged over values.
  """
  clf = _classifier().fit(codes_train, factor_train)
  scores = []
  for codes, factor in ((codes_train, factor_train), (codes_test, factor_test)):
    # disentanglement_lib binarises each split's labels with its own
    # MultiLabelBinarizer, which lines up with predict_proba's columns only
    # when the split holds every value the classifier saw (true at its sample
    # sizes) and fails otherwise. We binarise against the classifier's
    # classes and average over the values that occur (and do not fill the
    # split): the same number whenever disentanglement_lib's is defined.
    targets = factor[:, None] == clf.classes_[None, :]
    scored = targets.any(axis=0) & ~targets.all(axis=0)
    scores.append(float(metrics.roc_auc_score(
        targets[:, scored], clf.predict_proba(codes)[:, scored])))
  return scores[0], scores[1]


def modularity_explicitness(codes_train: np.ndarray, factors_train: np.ndarray,
                            codes_test: np.ndarray, factors_test: np.ndarray,
                            num_bins: int = 20,
                            n_jobs: int = 2) -> dict[str, float]:
  """Modularity and explicitness with disentanglement_lib's keys.

  Args:
    codes_train: (num_train, num_codes) real codes.
    factors_train: (num_train, num_factors) discrete ground-truth factors.
    codes_test: (num_test, num_codes) real codes.
    factors_test: (num_test, num_factors) discrete ground-truth factors.
    num_bins: histogram bins per code for the MI of modularity.
    n_jobs: processes fitting the per-factor classifiers (joblib; 1 = in this
      process). Each fit is deterministic, so the scores do not depend on it.

  Returns:
    {'modularity_score', 'explicitness_score_train', 'explicitness_score_test'}.
  """
  codes_train = np.asarray(codes_train)
  codes_test = np.asarray(codes_test)
  factors_train = np.asarray(factors_train)
  factors_test = np.asarray(factors_test)
  if factors_train.shape[1:] != factors_test.shape[1:]:
    raise ValueError(f'train factors {factors_train.shape} and test factors '
                     f'{factors_test.shape} differ in their number of factors.')
  mi = mutual_info.discrete_mutual_info(
      mutual_info.histogram_discretize(codes_train, num_bins), factors_train)
  mean, std = np.mean(codes_train, axis=0), np.std(codes_train, axis=0)
  train = _standardise(codes_train, mean, std)
  test = _standardise(codes_test, mean, std)
  # Processes, not threads: liblinear's random generator is process-wide.
  roc = joblib.Parallel(n_jobs=n_jobs)(
      joblib.delayed(explicitness_per_factor)(train, factors_train[:, j], test,
                                              factors_test[:, j])
      for j in range(factors_train.shape[1]))
  roc = np.array(roc)  # (num_factors, 2): train, test.
  return {'modularity_score': modularity(mi),
          'explicitness_score_train': float(np.mean(roc[:, 0])),
          'explicitness_score_test': float(np.mean(roc[:, 1]))}


# The suite's entry point (the protocol is in bvae_jax/metrics/__init__.py).
SUITE_POSITION = 20
USES_SHARED_CODES = True


def image_count(eval_config) -> int:
  """Images `compute` encodes itself: none, it reads the shared codes."""
  del eval_config
  return 0


def compute(inputs: sampling.MetricInputs, eval_config) -> dict[str, float]:
  """`modularity_explicitness` of the shared codes."""
  return modularity_explicitness(
      inputs.codes_train, inputs.factors_train, inputs.codes_test,
      inputs.factors_test, num_bins=eval_config.num_bins)
