"""Mutual Information Gap (MIG).

Chen et al. 2018, "Isolating sources of disentanglement in variational
autoencoders", NeurIPS (Sec. 4.1), as disentanglement_lib computes it
(disentanglement_lib/evaluation/metrics/mig.py, `_compute_mig`; Locatello et
al. 2019): for each factor, the gap between the two largest mutual informations
any code has with it, divided by the factor's entropy, then the mean over
factors.

Choices followed from disentanglement_lib:

* The MI is between *discretised* codes and factors (see `mutual_info`): 20
  equal-width bins over each code's sample range by default, so MIG is invariant
  to permuting codes and to per-code affine rescaling, not to other monotone
  maps. The paper instead estimates MI of the continuous posterior.
* The entropy is the plug-in entropy of the factor in this sample.
* The MI matrix is sorted over codes separately for each factor (descending);
  the top two entries of a factor's column come from two different codes, but
  one code may be the top one for several factors. A tie gives a gap of 0.
* A factor constant in the sample has entropy 0 and its gap is 0/0 = nan, which
  makes the mean nan, as in disentanglement_lib.
"""

import numpy as np

from bvae_jax.metrics import mutual_info
from bvae_jax.metrics import sampling


def mig_per_factor(codes: np.ndarray, factors: np.ndarray,
                   num_bins: int = 20) -> np.ndarray:
  """Normalised MI gap of each factor, (top-1 MI − top-2 MI) / H(factor).

  Args:
    codes: (num_points, num_codes) real codes, num_codes >= 2.
    factors: (num_points, num_factors) discrete ground-truth factors.
    num_bins: histogram bins per code.

  Returns:
    (num_factors,) gaps; their mean is `mig(...)['discrete_mig']`.
  """
  codes = np.asarray(codes)
  if codes.ndim != 2 or codes.shape[1] < 2:
    raise ValueError('MIG needs codes of shape (num_points, num_codes) with at '
                     f'least two codes, got shape {codes.shape}.')
  mi = mutual_info.discrete_mutual_info(
      mutual_info.histogram_discretize(codes, num_bins), factors)
  entropy = mutual_info.discrete_entropy(factors)
  top = np.sort(mi, axis=0)[::-1]  # (num_codes, num_factors), largest first.
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.divide(top[0, :] - top[1, :], entropy)


def mig(codes: np.ndarray, factors: np.ndarray,
        num_bins: int = 20) -> dict[str, float]:
  """MIG of a representation, with disentanglement_lib's key.

  Args:
    codes: (num_points, num_codes) real codes, num_codes >= 2.
    factors: (num_points, num_factors) discrete ground-truth factors.
    num_bins: histogram bins per code.

  Returns:
    {'discrete_mig': mean over factors of `mig_per_factor`}.
  """
  return {'discrete_mig': float(np.mean(mig_per_factor(codes, factors,
                                                       num_bins)))}


# The suite's entry point (the protocol is in bvae_jax/metrics/__init__.py).
SUITE_POSITION = 10
USES_SHARED_CODES = True


def image_count(eval_config) -> int:
  """Images `compute` encodes itself: none, it reads the shared codes."""
  del eval_config
  return 0


def compute(inputs: sampling.MetricInputs, eval_config) -> dict[str, float]:
  """`mig` of the shared training codes, `eval_config.num_bins` bins."""
  return mig(inputs.codes_train, inputs.factors_train,
             num_bins=eval_config.num_bins)
