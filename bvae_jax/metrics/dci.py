"""Disentanglement, completeness and informativeness (DCI).

Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of
Disentangled Representations", as computed by disentanglement_lib's
`evaluation/metrics/dci.py` (`_compute_dci`, `compute_importance_gbt`;
Locatello et al. 2019). Followed exactly:

* One `GradientBoostingClassifier` per factor, fit on the training codes,
  predicting the factor's value; sklearn's default parameters, which we pin
  in `GBT_PARAMS` so that a change of defaults cannot move the numbers.
* Importance matrix (num_codes, num_factors): column j is
  `abs(feature_importances_)` of factor j's classifier.
* informativeness_train / _test: the mean over factors of the classifiers'
  accuracies (disentanglement_lib names the lists "loss"; they are
  accuracies).
* disentanglement: 1 - entropy of each code's row, base num_factors, weighted
  by the code's share of all importance; completeness: 1 - entropy of each
  factor's column, base num_codes, weighted by the factor's share. Entropies
  are `scipy.stats.entropy(... + 1e-11, base=...)`, as in
  disentanglement_lib, and an all-zero matrix gets uniform weights.

One difference: disentanglement_lib leaves the classifier's random_state
unset. sklearn's trees visit features in a random order and keep the first of
equally good splits, so ties (duplicated codes, for one) were broken anew in
every run. We pin random_state=0, which makes DCI deterministic; without ties
the numbers are the same whatever the seed.

Speed: the classifier is `gradient_boosting.GradientBoostingClassifier`, a
numpy refit of sklearn 1.9.1's for GBT_PARAMS that reproduces its trees,
leaf values and roundings (sklearn/ensemble/_gb.py, sklearn/tree/_tree.pyx,
_splitter.pyx, _partitioner.pyx, _criterion.pyx, sklearn/_loss; details in
that module). sklearn sorts every node's samples by every code; at
disentanglement_lib's sizes (10,000 training and 5,000 test points, 10
codes, dSprites' factors of 3, 6, 40, 32 and 32 values) DCI took 180-270 s
on two cores with it, and takes 46-51 s now (90 s in one process).
Exactness was checked against sklearn's classifier itself
(tests/test_metric_gradient_boosting.py: same trees, features and
thresholds, leaf values, raw predictions, predictions and
feature_importances_, on continuous, duplicated and nearly tied codes, and
the DCI dict), and against disentanglement_lib's `compute_importance_gbt`
(tests/test_metric_dci.py); on those data and on the benchmark above the
numbers came out bit-identical. Codes with exactly equal values can round
differently (see gradient_boosting.py).

The per-factor classifiers are independent, so they are fitted in worker
processes (joblib), largest number of classes first so that the workers
finish together; on two cores that still almost halves the time. Each fit
is the same computation as in a serial loop, so the numbers do not depend
on `n_jobs`.
"""

import joblib
import numpy as np
import scipy.stats
from sklearn import ensemble

from bvae_jax.metrics import gradient_boosting
from bvae_jax.metrics import sampling

# GradientBoostingClassifier() as disentanglement_lib builds it (sklearn's
# defaults; 'log_loss' is what sklearn < 1.1 called 'deviance'), plus a fixed
# random_state (see the module docstring). The old default
# criterion='friedman_mse' is not passed: sklearn 1.9 deprecates the
# parameter and grows every tree with 'squared_error', which ranks the splits
# of a node identically (both gains are n_left * n_right / n *
# (mean_left - mean_right)**2 up to a constant) and gives the same node
# impurities, hence the same importances; only float rounding of near-ties
# can differ.
GBT_PARAMS = dict(
    loss='log_loss', learning_rate=0.1, n_estimators=100, subsample=1.0,
    min_samples_split=2, min_samples_leaf=1,
    min_weight_fraction_leaf=0.0, max_depth=3, min_impurity_decrease=0.0,
    init=None, max_features=None, max_leaf_nodes=None, warm_start=False,
    validation_fraction=0.1, n_iter_no_change=None, tol=1e-4, ccp_alpha=0.0,
    random_state=0)


# The classifiers DCI can fit: 'fast' (gradient_boosting's refit, the
# default) or 'sklearn' (sklearn's own, the reference path).
CLASSIFIERS = ('fast', 'sklearn')


def dci(codes_train, factors_train, codes_test, factors_test, n_jobs=None,
        classifier='fast'):
  """DCI scores of codes against the factors that generated them.

  Args:
    codes_train: (num_train, num_codes) codes.
    factors_train: (num_train, num_factors) int factors of the same points.
    codes_test: (num_test, num_codes) codes.
    factors_test: (num_test, num_factors) int factors.
    n_jobs: worker processes; None: one per factor, at most one per CPU.
    classifier: 'fast' (gradient_boosting.GradientBoostingClassifier) or
      'sklearn' (sklearn.ensemble.GradientBoostingClassifier), both with
      GBT_PARAMS. docs/metrics.md says where the two agree bit for bit.

  Returns:
    {'disentanglement', 'completeness', 'informativeness_train',
     'informativeness_test'}, floats.
  """
  importance, train_accuracy, test_accuracy = importance_matrix(
      codes_train, factors_train, codes_test, factors_test, n_jobs=n_jobs,
      classifier=classifier)
  return {
      'informativeness_train': float(train_accuracy),
      'informativeness_test': float(test_accuracy),
      'disentanglement': float(disentanglement(importance)),
      'completeness': float(completeness(importance)),
  }


def importance_matrix(codes_train, factors_train, codes_test, factors_test,
                      n_jobs=None, classifier='fast'):
  """Gradient-boosted-tree importances and accuracies.

  Args: as `dci`.

  Returns:
    (importance (num_codes, num_factors) float64, mean train accuracy, mean
    test accuracy).

  Raises:
    ValueError: on shapes that do not match (naming them), or an unknown
      classifier.
  """
  if classifier not in CLASSIFIERS:
    raise ValueError(f'DCI classifier must be one of {CLASSIFIERS}, got '
                     f'{classifier!r}')
  codes_train, factors_train = _checked(codes_train, factors_train, 'train')
  codes_test, factors_test = _checked(codes_test, factors_test, 'test')
  if codes_train.shape[1] != codes_test.shape[1]:
    raise ValueError(f'train codes have {codes_train.shape[1]} columns, test '
                     f'codes {codes_test.shape[1]}')
  if factors_train.shape[1] != factors_test.shape[1]:
    raise ValueError(f'train factors have {factors_train.shape[1]} columns, '
                     f'test factors {factors_test.shape[1]}')
  num_factors = factors_train.shape[1]
  # Longest fits first: a fit's cost grows with the factor's number of
  # classes (one tree per class and stage).
  order = sorted(range(num_factors),
                 key=lambda j: -len(np.unique(factors_train[:, j])))
  if n_jobs is None:
    n_jobs = min(num_factors, joblib.cpu_count())
  jobs = [joblib.delayed(_fit_factor)(codes_train, factors_train[:, j],
                                      codes_test, factors_test[:, j],
                                      classifier)
          for j in order]
  if n_jobs == 1:
    results = [function(*args) for function, args, _ in jobs]
  else:
    results = joblib.Parallel(n_jobs=n_jobs, batch_size=1)(jobs)
  by_factor = dict(zip(order, results))
  importance = np.zeros((codes_train.shape[1], num_factors), np.float64)
  train_accuracies, test_accuracies = [], []
  for j in range(num_factors):
    importance[:, j], train_accuracy, test_accuracy = by_factor[j]
    train_accuracies.append(train_accuracy)
    test_accuracies.append(test_accuracy)
  return importance, np.mean(train_accuracies), np.mean(test_accuracies)


def _checked(codes, factors, split):
  codes = np.asarray(codes)
  factors = np.asarray(factors)
  if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
    raise ValueError(
        f'{split}: codes must be (num_points, num_codes) and factors '
        f'(num_points, num_factors), got {codes.shape} and {factors.shape}')
  return codes, factors


def _fit_factor(codes_train, labels_train, codes_test, labels_test,
                classifier='fast'):
  """Importances and accuracies of one factor's classifier."""
  if classifier == 'sklearn':
    model = ensemble.GradientBoostingClassifier(**GBT_PARAMS)
    model.fit(codes_train, labels_train)
    train_predictions = model.predict(codes_train)
  else:
    model = gradient_boosting.GradientBoostingClassifier(**GBT_PARAMS)
    model.fit(codes_train, labels_train)
    # train_predictions_ is predict(codes_train), kept from the fit.
    train_predictions = model.train_predictions_
  return (np.abs(model.feature_importances_),
          np.mean(train_predictions == labels_train),
          np.mean(model.predict(codes_test) == labels_test))


def disentanglement_per_code(importance):
  """1 - entropy (base num_factors) of each code's importance row."""
  return 1. - scipy.stats.entropy(importance.T + 1e-11,
                                  base=importance.shape[1])


def disentanglement(importance):
  """Per-code disentanglement weighted by each code's share of importance."""
  per_code = disentanglement_per_code(importance)
  if importance.sum() == 0.:
    importance = np.ones_like(importance)
  code_importance = importance.sum(axis=1) / importance.sum()
  return np.sum(per_code * code_importance)


def completeness_per_factor(importance):
  """1 - entropy (base num_codes) of each factor's importance column."""
  return 1. - scipy.stats.entropy(importance + 1e-11,
                                  base=importance.shape[0])


def completeness(importance):
  """Per-factor completeness weighted by each factor's share of importance."""
  per_factor = completeness_per_factor(importance)
  if importance.sum() == 0.:
    importance = np.ones_like(importance)
  factor_importance = importance.sum(axis=0) / importance.sum()
  return np.sum(per_factor * factor_importance)


# The suite's entry point (the protocol is in bvae_jax/metrics/__init__.py).
SUITE_POSITION = 30
USES_SHARED_CODES = True


def image_count(eval_config) -> int:
  """Images `compute` encodes itself: none, it reads the shared codes."""
  del eval_config
  return 0


def compute(inputs: sampling.MetricInputs, eval_config) -> dict[str, float]:
  """`dci` of the shared codes, with eval_config.dci_classifier."""
  return dci(inputs.codes_train, inputs.factors_train, inputs.codes_test,
             inputs.factors_test,
             classifier=eval_config.get('dci_classifier', 'fast'))
