"""UDR: unsupervised model selection by agreement between seeds.

Duan et al. (2020), "Unsupervised model selection for variational
disentangled representation learning" (ICLR; arXiv:1905.12614): a
disentangled representation is one that other seeds of the same setting
learn too, up to permutation and sign of the latents. UDR scores a model by
how one-to-one its informative latents match those of each other model, with
no ground-truth labels. Definitions follow disentanglement_lib's
`evaluation/udr/metrics/udr.py` (`compute_udr_sklearn`):

1. Encode the same observations with every model: posterior means, and the
   mean KL of each latent to the prior.
2. Standardise each model's means per latent; latents with mean KL ≤ 0.01
   nats are zeroed.
3. For each ordered pair (i, j): R_ij = |coefficients| of a Lasso regression
   (alpha 0.1) of model j's latents on model i's (rows: i's latents,
   columns: j's), or the absolute Spearman correlations.
4. Keep the rows of i's and columns of j's latents whose KL exceeds
   `kl_filter_threshold`, and score R by relative strength:
   ½ (mean over columns of max² / sum + mean over rows of max² / sum), a
   column or row of zeros counting 0. 1 for a permutation matrix.
5. A model's UDR is the median of its scores against the other models (the
   column of the pairwise matrix, as disentanglement_lib).

This is not a metric of the suite (metrics.suite): it scores sets of models.
bvae_jax/sweeps/udr_selection.py runs it over the seeds of a trained sweep.
"""

from typing import Callable, Sequence

import numpy as np
from scipy import stats
from sklearn import linear_model
from sklearn import preprocessing

# Latents at or below this mean KL (nats) are zeroed before the regressions
# (disentanglement_lib hard-codes 0.01 there).
ZERO_KL_NATS = 0.01
LASSO_ALPHA = 0.1  # disentanglement_lib's lasso_correlation_matrix.
CORRELATIONS = ('lasso', 'spearman')


def relative_strength_disentanglement(correlation: np.ndarray) -> float:
  """½ (columns' mean of max²/sum + rows' mean of max²/sum).

  A row or column that sums to 0, or holds a NaN, counts 0. With no latent
  left on either side (a model whose every latent is below the KL filter)
  the score is 0: there is nothing to agree on. (disentanglement_lib raises
  there, taking the max of an empty array.)
  """
  correlation = np.asarray(correlation, np.float64)
  if correlation.size == 0:
    return 0.0
  with np.errstate(divide='ignore', invalid='ignore'):
    by_column = np.nan_to_num(correlation.max(axis=0)**2 /
                              correlation.sum(axis=0))
    by_row = np.nan_to_num(correlation.max(axis=1)**2 /
                           correlation.sum(axis=1))
  return float((by_column.mean() + by_row.mean()) / 2)


def spearman_correlation_matrix(codes_i: np.ndarray, codes_j: np.ndarray
                                ) -> np.ndarray:
  """(L_i, L_j) absolute Spearman rank correlations of i's and j's latents.

  A constant latent (zeroed as uninformative) has NaN correlations, as
  scipy gives them; relative_strength_disentanglement then counts its row or
  column as 0, as disentanglement_lib does.
  """
  # Pearson correlation of the ranks (average ranks for ties), pair by pair,
  # as disentanglement_lib's loop of scipy.stats.spearmanr over column pairs
  # computes it. (spearmanr on the two whole matrices returns one NaN, not a
  # matrix, as soon as any column is constant: scipy 1.17.)
  def standard_ranks(codes):
    ranks = stats.rankdata(codes, axis=0)
    centred = ranks - ranks.mean(axis=0)
    with np.errstate(divide='ignore', invalid='ignore'):
      return centred / np.sqrt(np.sum(centred**2, axis=0))
  with np.errstate(invalid='ignore'):
    return np.abs(standard_ranks(codes_i).T @ standard_ranks(codes_j))


def lasso_correlation_matrix(codes_i: np.ndarray, codes_j: np.ndarray,
                             random_state=None) -> np.ndarray:
  """(L_i, L_j) |Lasso coefficients| of j's latents regressed on i's."""
  model = linear_model.Lasso(alpha=LASSO_ALPHA, random_state=random_state)
  model.fit(codes_i, codes_j)
  return np.abs(model.coef_).T


def mean_kl_per_latent(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
  """(L,) mean KL(N(mean, exp(log_var)) ‖ N(0, 1)) per latent, in nats."""
  return np.mean(0.5 * (mean**2 + np.exp(log_var) - log_var - 1), axis=0)


def udr_from_codes(codes: Sequence[np.ndarray], kls: Sequence[np.ndarray], *,
                   correlation: str = 'lasso', filter_low_kl: bool = True,
                   kl_filter_threshold: float = 0.01, random_state=None
                   ) -> dict[str, np.ndarray]:
  """UDR of models whose codes of the same observations are given.

  Args:
    codes: per model, (N, L) posterior means of the same N observations.
    kls: per model, (L,) mean KL of each latent.
    correlation: 'lasso' or 'spearman'.
    filter_low_kl: score only latents with KL > kl_filter_threshold.
    kl_filter_threshold: see filter_low_kl.
    random_state: seeds the Lasso (its coordinate descent is cyclic, so this
      only matters for ties).

  Returns:
    {'pairwise': (M, M) relative strength of each ordered pair (row i, column
     j; the diagonal is 0), 'model_scores': (M,) median of each column
     without its diagonal, 'correlations': (M, M, L, L)}.

  Raises:
    ValueError: fewer than two models, or mismatched shapes, or an unknown
      correlation.
  """
  if correlation not in CORRELATIONS:
    raise ValueError(f'correlation must be one of {CORRELATIONS}, got '
                     f'{correlation!r}')
  if len(codes) < 2 or len(codes) != len(kls):
    raise ValueError(f'UDR needs codes and KLs of ≥ 2 models; got '
                     f'{len(codes)} codes and {len(kls)} KLs')
  shapes = {np.shape(c) for c in codes}
  if len(shapes) != 1:
    raise ValueError(f'every model must encode the same observations to '
                     f'the same number of latents; got shapes {sorted(shapes)}')
  standardised, masks = [], []
  for code, kl in zip(codes, kls):
    kl = np.asarray(kl)
    scaled = preprocessing.StandardScaler().fit_transform(code)
    standardised.append(scaled * (kl > ZERO_KL_NATS))
    masks.append(kl > kl_filter_threshold)
  num_models, num_latents = len(codes), codes[0].shape[1]
  correlations = np.zeros((num_models, num_models, num_latents, num_latents))
  pairwise = np.zeros((num_models, num_models))
  for i in range(num_models):
    for j in range(num_models):
      if i == j:
        continue
      if correlation == 'lasso':
        matrix = lasso_correlation_matrix(standardised[i], standardised[j],
                                          random_state)
      else:
        matrix = spearman_correlation_matrix(standardised[i], standardised[j])
      correlations[i, j] = matrix
      if filter_low_kl:
        matrix = matrix[masks[i]][:, masks[j]]
      pairwise[i, j] = relative_strength_disentanglement(matrix)
  scores = np.array([np.median(np.delete(pairwise[:, i], i))
                     for i in range(num_models)])
  return {'pairwise': pairwise, 'model_scores': scores,
          'correlations': correlations}


def compute_udr(ground_truth, gaussian_encoders: Sequence[Callable], *,
                random_state: np.random.RandomState, num_points: int,
                batch_size: int, **options) -> dict[str, np.ndarray]:
  """UDR of encoders on observations drawn from a data set.

  Args:
    ground_truth: a GroundTruthData; only its observations are used.
    gaussian_encoders: per model, observations -> (mean, log_var).
    random_state: draws the observations.
    num_points: observations in all (a multiple of batch_size).
    batch_size: observations drawn and encoded at a time.
    **options: udr_from_codes' keyword arguments.

  Raises:
    ValueError: num_points is not a multiple of batch_size.
  """
  if num_points % batch_size:
    raise ValueError(f'num_points ({num_points}) must be a multiple of '
                     f'batch_size ({batch_size})')
  means = [[] for _ in gaussian_encoders]
  log_vars = [[] for _ in gaussian_encoders]
  for _ in range(num_points // batch_size):
    observations = ground_truth.sample_observations(batch_size, random_state)
    for model, encoder in enumerate(gaussian_encoders):
      mean, log_var = encoder(observations)
      means[model].append(np.asarray(mean))
      log_vars[model].append(np.asarray(log_var))
  codes = [np.concatenate(m) for m in means]
  kls = [mean_kl_per_latent(c, np.concatenate(v))
         for c, v in zip(codes, log_vars)]
  return udr_from_codes(codes, kls, random_state=random_state, **options)
