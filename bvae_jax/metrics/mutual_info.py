"""Histogram discretisation and plug-in mutual information of codes and factors.

The shared estimators behind MIG and modularity, following
disentanglement_lib/evaluation/metrics/utils.py (`_histogram_discretize`,
`discrete_mutual_info`, `discrete_entropy`; Locatello et al. 2019). That file
takes arrays as (num_codes, num_points); here every array is
(num_points, num_dims), so a code or factor is a column, never a row.

Choices followed from disentanglement_lib:

* Bins are equal-width over each code's *sample* range (np.histogram's edges),
  found separately per code, so they move with the data: a per-code affine
  map keeps the bin labels (a negative scale reverses them), so every MI is
  unchanged up to rounding of points that lie on a bin edge.
  np.digitize against all edges but the last puts the maximum in bin
  `num_bins`, so labels run 1..num_bins. A constant code gets one label.
* Mutual information is the plug-in (maximum-likelihood) estimate in nats,
  sklearn.metrics.mutual_info_score with the factor as `labels_true` and the
  code as `labels_pred`. It is biased upwards for finite samples: independent
  variables get a small positive MI.
* Entropy is estimated from the same sample, as mutual_info_score(y, y), not
  from the data set's known factor distribution.
"""

import numpy as np
from sklearn import metrics


def _as_columns(array: np.ndarray, name: str) -> np.ndarray:
  """`array` as a 2-D (num_points, num_dims) array, or a ValueError."""
  array = np.asarray(array)
  if array.ndim != 2:
    raise ValueError(f'{name} must be 2-D (num_points, num_dims), got shape '
                     f'{array.shape}.')
  return array


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
  """Per-code equal-width binning over the sample's range.

  Args:
    codes: (num_points, num_codes) real codes.
    num_bins: bins per code (disentanglement_lib's configs use 20).

  Returns:
    (num_points, num_codes) int64 bin labels in 1..num_bins.
    (disentanglement_lib keeps the codes' float dtype; the labels, and so every
    MI, are the same.)
  """
  codes = _as_columns(codes, 'codes')
  discrete = np.zeros(codes.shape, dtype=np.int64)
  for i in range(codes.shape[1]):
    # Edges from the column itself, in its own dtype, as disentanglement_lib.
    edges = np.histogram(codes[:, i], num_bins)[1]
    discrete[:, i] = np.digitize(codes[:, i], edges[:-1])
  return discrete


def _labels(column: np.ndarray) -> tuple[np.ndarray, int]:
  """Indices (from 0) of a column's sorted distinct values, and their count."""
  values, inverse = np.unique(column, return_inverse=True)
  return inverse.ravel(), values.size


def discrete_mutual_info(discrete_codes: np.ndarray,
                         factors: np.ndarray) -> np.ndarray:
  """Plug-in mutual information of every code with every factor.

  Equal, entry by entry, to disentanglement_lib's
  `mutual_info_score(factor_j, code_i)`: each column is labelled once and the
  contingency table, whose rows are the factor's sorted values and columns the
  code's, goes to sklearn's own MI formula, so the nats are computed the same
  way (bit for bit, in the tests).

  Args:
    discrete_codes: (num_points, num_codes) discrete labels, e.g. from
      `histogram_discretize`.
    factors: (num_points, num_factors) discrete ground-truth factors.

  Returns:
    (num_codes, num_factors) mutual information in nats.
  """
  discrete_codes = _as_columns(discrete_codes, 'discrete_codes')
  factors = _as_columns(factors, 'factors')
  if discrete_codes.shape[0] != factors.shape[0]:
    raise ValueError(f'codes have {discrete_codes.shape[0]} points but factors '
                     f'have {factors.shape[0]}.')
  code_labels = [_labels(discrete_codes[:, i])
                 for i in range(discrete_codes.shape[1])]
  factor_labels = [_labels(factors[:, j]) for j in range(factors.shape[1])]
  mi = np.zeros((len(code_labels), len(factor_labels)))
  for i, (code, num_code_values) in enumerate(code_labels):
    for j, (factor, num_factor_values) in enumerate(factor_labels):
      # Only observed values get a row or column, as in sklearn's table.
      contingency = np.bincount(
          factor * num_code_values + code,
          minlength=num_factor_values * num_code_values).reshape(
              num_factor_values, num_code_values)
      mi[i, j] = metrics.mutual_info_score(None, None, contingency=contingency)
  return mi


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
  """Entropy of each factor in nats, estimated from this sample.

  As disentanglement_lib, H(y) = mutual_info_score(y, y): the plug-in entropy of
  the sample's value frequencies, not of the data set's factor distribution.

  Args:
    factors: (num_points, num_factors) discrete ground-truth factors.

  Returns:
    (num_factors,) entropies; 0 for a factor constant in the sample.
  """
  factors = _as_columns(factors, 'factors')
  return np.array([metrics.mutual_info_score(factors[:, j], factors[:, j])
                   for j in range(factors.shape[1])])
