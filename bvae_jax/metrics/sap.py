"""Separated Attribute Predictability (SAP).

Kumar et al. 2018, "Variational inference of disentangled latent concepts from
unlabeled observations", ICLR (Sec. 3), as disentanglement_lib computes it
(disentanglement_lib/evaluation/metrics/sap_score.py, `_compute_sap`; Locatello
et al. 2019): a (num_codes, num_factors) matrix of how well each single code
predicts each factor, then the mean over factors of the gap between the two
best codes.

Choices followed from disentanglement_lib:

* Discrete factors (continuous_factors=False, as in disentanglement_lib's
  study configs, with 10000 train and 5000 test points): the score of code i
  for factor j is the *test* accuracy of LinearSVC(C=0.01,
  class_weight='balanced') trained on code i alone, on the raw (unstandardised)
  code. The SVM penalises its intercept, so SAP is not invariant to shifting or
  rescaling codes, only to permuting them.
* Continuous factors: the squared Pearson correlation on the *training* points,
  cov(c, y)² / (var(c) var(y)) with ddof=1, and 0 where var(c) <= 1e-12. The
  test points are unused. A factor constant in the sample gives nan.
* The gap is between the two largest scores of each factor's column (a tie
  gives 0); one code may be the best for several factors.

LinearSVC is pinned to its defaults of disentanglement_lib's time (dual=True
was the default before scikit-learn 1.3; today's dual='auto' would switch to the
primal solver): dual coordinate descent, squared hinge, L2, tol=1e-4,
max_iter=1000, liblinear's one-vs-rest.

Unavoidable difference: the dual solver shuffles with a random seed that
disentanglement_lib left unset (random_state=None, so its SAP varied from run
to run); here it is fixed at 0 so the score is deterministic.
"""

import joblib
import numpy as np
from sklearn import svm

from bvae_jax.metrics import sampling


def _svm_accuracy(code_train: np.ndarray, factor_train: np.ndarray,
                  code_test: np.ndarray, factor_test: np.ndarray) -> float:
  """Test accuracy of disentanglement_lib's LinearSVC on a single code."""
  classifier = svm.LinearSVC(
      C=0.01, class_weight='balanced', penalty='l2', loss='squared_hinge',
      dual=True, tol=1e-4, multi_class='ovr', fit_intercept=True,
      intercept_scaling=1, max_iter=1000, random_state=0)
  classifier.fit(code_train[:, np.newaxis], factor_train)
  prediction = classifier.predict(code_test[:, np.newaxis])
  return float(np.mean(prediction == factor_test))


def _squared_correlation(code: np.ndarray, factor: np.ndarray) -> float:
  """cov² / (var_code var_factor) with ddof=1; 0 for a (near-)constant code."""
  cov = np.cov(code, factor, ddof=1)
  if cov[0, 0] > 1e-12:
    return float(cov[0, 1]**2 / (cov[0, 0] * cov[1, 1]))
  return 0.


def score_matrix(codes_train: np.ndarray, factors_train: np.ndarray,
                 codes_test: np.ndarray, factors_test: np.ndarray,
                 continuous_factors: bool = False,
                 n_jobs: int = 2) -> np.ndarray:
  """How well each single code predicts each factor.

  Args:
    codes_train: (num_train, num_codes) real codes.
    factors_train: (num_train, num_factors) ground-truth factors.
    codes_test: (num_test, num_codes) real codes (unused if continuous).
    factors_test: (num_test, num_factors) factors (unused if continuous).
    continuous_factors: squared correlation instead of SVM accuracy.
    n_jobs: processes fitting the SVMs (joblib; 1 = in this process). Each fit
      has a fixed seed, so the matrix does not depend on it.

  Returns:
    (num_codes, num_factors) scores.
  """
  codes_train = np.asarray(codes_train)
  factors_train = np.asarray(factors_train)
  num_codes, num_factors = codes_train.shape[1], factors_train.shape[1]
  pairs = [(i, j) for i in range(num_codes) for j in range(num_factors)]
  if continuous_factors:
    scores = [_squared_correlation(codes_train[:, i], factors_train[:, j])
              for i, j in pairs]
  else:
    codes_test = np.asarray(codes_test)
    factors_test = np.asarray(factors_test)
    # Processes, not threads: liblinear's shuffling draws from one process-wide
    # random generator, which concurrent threads would share.
    scores = joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(_svm_accuracy)(codes_train[:, i], factors_train[:, j],
                                      codes_test[:, i], factors_test[:, j])
        for i, j in pairs)
  return np.array(scores, dtype=np.float64).reshape(num_codes, num_factors)


def avg_diff_top_two(matrix: np.ndarray) -> float:
  """Mean over columns (factors) of the largest minus the second-largest."""
  ordered = np.sort(matrix, axis=0)
  return float(np.mean(ordered[-1, :] - ordered[-2, :]))


def sap(codes_train: np.ndarray, factors_train: np.ndarray,
        codes_test: np.ndarray, factors_test: np.ndarray,
        continuous_factors: bool = False,
        n_jobs: int = 2) -> dict[str, float]:
  """SAP score with disentanglement_lib's key.

  Args:
    codes_train: (num_train, num_codes) real codes, num_codes >= 2.
    factors_train: (num_train, num_factors) ground-truth factors.
    codes_test: (num_test, num_codes) real codes.
    factors_test: (num_test, num_factors) ground-truth factors.
    continuous_factors: treat factors as continuous (squared correlation).
    n_jobs: processes for the SVM fits; does not change the result.

  Returns:
    {'SAP_score': mean over factors of the top-two score gap}.
  """
  codes_train = np.asarray(codes_train)
  if codes_train.ndim != 2 or codes_train.shape[1] < 2:
    raise ValueError('SAP needs codes of shape (num_points, num_codes) with at '
                     f'least two codes, got shape {codes_train.shape}.')
  matrix = score_matrix(codes_train, factors_train, codes_test, factors_test,
                        continuous_factors, n_jobs)
  return {'SAP_score': avg_diff_top_two(matrix)}


# The suite's entry point (the protocol is in bvae_jax/metrics/__init__.py).
SUITE_POSITION = 40
USES_SHARED_CODES = True


def image_count(eval_config) -> int:
  """Images `compute` encodes itself: none, it reads the shared codes."""
  del eval_config
  return 0


def compute(inputs: sampling.MetricInputs, eval_config) -> dict[str, float]:
  """`sap` of the shared codes, discrete factors."""
  del eval_config  # No setting of config.eval changes it.
  return sap(inputs.codes_train, inputs.factors_train, inputs.codes_test,
             inputs.factors_test)
