"""UDR (Duan et al. 2020) against disentanglement_lib's definitions and tests.

The expectations mirror disentanglement_lib's
evaluation/udr/metrics/udr_test.py; exact values are worked out by hand.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

from bvae_jax.metrics import udr


def test_relative_strength_of_reference_matrices():
  assert udr.relative_strength_disentanglement(np.eye(3)) == 1.0
  # Two latents sharing two: columns and rows score ½, ½, 1 → 2/3.
  shared = np.array([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]])
  assert udr.relative_strength_disentanglement(shared) == pytest.approx(2 / 3)
  assert udr.relative_strength_disentanglement(np.ones((3, 3))) == (
      pytest.approx(1 / 3))
  assert udr.relative_strength_disentanglement(np.zeros((3, 3))) == 0.0


def test_no_informative_latent_scores_zero():
  assert udr.relative_strength_disentanglement(np.zeros((0, 3))) == 0.0
  codes = [np.random.RandomState(0).normal(size=(100, 3))] * 2
  result = udr.udr_from_codes(codes, [np.zeros(3), np.ones(3)])
  np.testing.assert_array_equal(result['model_scores'], [0.0, 0.0])


def test_a_nan_row_or_column_counts_zero():
  matrix = np.eye(2)
  matrix[0, 1] = np.nan
  # Column 1 and row 0 hold the NaN: each side averages (1 + 0) / 2.
  assert udr.relative_strength_disentanglement(matrix) == pytest.approx(0.5)


def test_spearman_matrix_of_a_copy_and_of_a_duplicated_latent():
  rng = np.random.RandomState(0)
  codes = rng.random_sample((1000, 3))
  np.testing.assert_allclose(
      udr.spearman_correlation_matrix(codes, codes.copy()), np.eye(3),
      atol=0.1)
  other = codes.copy()
  other[:, 1] = other[:, 0]
  expected = np.array([[1.0, 1, 0], [0, 0, 0], [0, 0, 1]])
  np.testing.assert_allclose(udr.spearman_correlation_matrix(codes, other),
                             expected, atol=0.1)


def test_lasso_matrix_of_a_copy_and_of_a_duplicated_latent():
  rng = np.random.RandomState(0)
  codes = rng.random_sample((1000, 3)) * 10
  np.testing.assert_allclose(
      udr.lasso_correlation_matrix(codes, codes.copy(), rng), np.eye(3),
      atol=0.2)
  other = codes.copy()
  other[:, 1] = other[:, 0]
  expected = np.array([[1.0, 1, 0], [0, 0, 0], [0, 0, 1]])
  np.testing.assert_allclose(udr.lasso_correlation_matrix(codes, other, rng),
                             expected, atol=0.2)


@pytest.mark.parametrize('correlation', udr.CORRELATIONS)
def test_udr_is_invariant_to_permutation_and_sign(correlation):
  rng = np.random.RandomState(0)
  codes = rng.normal(size=(1000, 10))
  permuted = codes[:, rng.permutation(10)]
  permuted[:, :5] *= -1
  scores = udr.udr_from_codes([codes, permuted], [np.ones(10)] * 2,
                              correlation=correlation, random_state=rng)
  assert np.all(scores['model_scores'] > 0.8)


@pytest.mark.parametrize('correlation', udr.CORRELATIONS)
def test_entangled_pairs_score_lower_than_permuted_ones(correlation):
  rng = np.random.RandomState(1)
  codes = rng.normal(size=(2000, 4))
  rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
  scores = udr.udr_from_codes([codes, codes @ rotation], [np.ones(4)] * 2,
                              correlation=correlation, random_state=rng)
  assert np.all(scores['model_scores'] < 0.8)


def test_only_informative_latents_are_scored():
  rng = np.random.RandomState(0)
  informative = rng.normal(size=(1000, 1))
  kl = np.zeros(10)
  kl[0] = 1.0
  codes = [np.concatenate([informative, rng.random_sample((1000, 9))], axis=1)
           for _ in range(2)]
  unfiltered = udr.udr_from_codes(codes, [kl, kl], filter_low_kl=False,
                                  random_state=rng)
  filtered = udr.udr_from_codes(codes, [kl, kl], filter_low_kl=True,
                                random_state=rng)
  # Lasso (alpha 0.1) of a standardised latent on itself gives the
  # coefficient 1 − 0.1, and max²/sum = 0.9. Unfiltered, 9 zeroed rows and
  # columns count 0: 0.9 / 10 a side.
  assert unfiltered['model_scores'] == pytest.approx([0.09, 0.09], abs=0.01)
  assert filtered['model_scores'] == pytest.approx([0.9, 0.9], abs=1e-3)


def test_model_score_is_the_median_of_its_column():
  rng = np.random.RandomState(0)
  base = rng.normal(size=(1000, 3))
  codes = [base, base[:, ::-1], base @ np.linalg.qr(rng.normal(size=(3, 3)))[0]]
  result = udr.udr_from_codes(codes, [np.ones(3)] * 3, random_state=rng)
  pairwise = result['pairwise']
  assert np.all(np.diag(pairwise) == 0)
  for model in range(3):
    others = np.delete(pairwise[:, model], model)
    assert result['model_scores'][model] == np.median(others)


class _Blobs:
  """A stand-in data set: observations are (n, 2) points."""

  def sample_observations(self, num, random_state):
    return random_state.normal(size=(num, 2))


def test_compute_udr_encodes_the_same_observations_with_every_model():
  seen = []

  def encoder(scale):
    def encode(observations):
      seen.append(observations.copy())
      return scale * observations, np.zeros_like(observations)
    return encode

  result = udr.compute_udr(_Blobs(), [encoder(1.0), encoder(-2.0)],
                           random_state=np.random.RandomState(0),
                           num_points=40, batch_size=20)
  np.testing.assert_array_equal(seen[0], seen[1])  # Same batch, both models.
  assert not np.array_equal(seen[0], seen[2])
  # A one-to-one match; Lasso's shrinkage makes it 1 − alpha = 0.9.
  assert result['model_scores'] == pytest.approx([0.9, 0.9], abs=1e-3)


def test_bad_inputs_are_refused_with_the_reason():
  with pytest.raises(ValueError, match='multiple of batch_size'):
    udr.compute_udr(_Blobs(), [], random_state=np.random.RandomState(0),
                    num_points=30, batch_size=20)
  with pytest.raises(ValueError, match='≥ 2 models'):
    udr.udr_from_codes([np.zeros((5, 2))], [np.ones(2)])
  with pytest.raises(ValueError, match='correlation must be'):
    udr.udr_from_codes([np.zeros((5, 2))] * 2, [np.ones(2)] * 2,
                       correlation='pearson')


def test_spearman_matrix_with_a_constant_latent_is_pairwise_scipy():
  # disentanglement_lib correlates column pairs one by one; a zeroed
  # (uninformative) latent gives a NaN row. scipy's spearmanr on two whole
  # matrices returns a single NaN instead once any column is constant (scipy
  # 1.17), which broke UDR with correlation='spearman' on trained models.
  rs = np.random.RandomState(0)
  a = rs.randn(200, 4)
  b = a[:, [2, 0, 1, 3]] * [1, -2, 3, 1] + 0.3 * rs.randn(200, 4)
  a[:, 1] = 0.0
  with np.errstate(invalid='ignore'), warnings.catch_warnings():
    warnings.simplefilter('ignore', stats.ConstantInputWarning)
    expected = np.array([[abs(stats.spearmanr(a[:, p], b[:, q])[0])
                          for q in range(4)] for p in range(4)])
  matrix = udr.spearman_correlation_matrix(a, b)
  assert matrix.shape == (4, 4)
  np.testing.assert_array_equal(np.isnan(matrix), np.isnan(expected))
  assert np.all(np.isnan(matrix[1]))
  np.testing.assert_allclose(matrix[~np.isnan(matrix)],
                             expected[~np.isnan(expected)], atol=1e-12)
