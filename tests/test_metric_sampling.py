"""Tests of metrics.sampling, and the fake ground truths the metric tests share.

The fakes are tiny: an "image" is the factor values scaled to [0, 1], shape
(1, 1, num_factors), so a representation function can be the identity, a
rotation or a constant. `NoisyFake` draws noise from the random state while
rendering, as disentanglement_lib's noisy dSprites does, to exercise the
path where rendering cannot be batched across points.
"""

import numpy as np
import pytest

from bvae_jax.datasets import ground_truth
from bvae_jax.metrics import sampling


class Fake(ground_truth.GroundTruthData):
  """Factors of sizes `sizes`; the observation is the scaled factors."""

  def __init__(self, sizes=(3, 4, 5)):
    super().__init__([f'f{i}' for i in range(len(sizes))], sizes,
                     (1, 1, len(sizes)))
    self.render_calls = 0

  def sample_observations_from_factors(self, factors, random_state):
    del random_state  # Deterministic.
    self.render_calls += 1
    factors = self.validated_factors(factors)
    scaled = factors / (np.array(self.factors_num_values) - 1.)
    return scaled.astype(np.float32).reshape((-1,) + self.observation_shape)


class NoisyFake(Fake):
  """As Fake, plus uniform noise drawn from the given random state."""

  def sample_observations_from_factors(self, factors, random_state):
    clean = super().sample_observations_from_factors(factors, None)
    noise = random_state.uniform(0., 0.01, size=clean.shape)
    return (clean + noise).astype(np.float32)


def flat(observations):
  """The identity representation: observations (n, 1, 1, k) -> (n, k)."""
  return observations.reshape(len(observations), -1)


def linear(matrix):
  """Representation observations -> flat(observations) @ matrix."""
  return lambda observations: flat(observations) @ matrix


def dislib_generate_batch_factor_code(ground_truth_data,
                                      representation_function, num_points,
                                      random_state, batch_size):
  """disentanglement_lib's utils.generate_batch_factor_code, transcribed.

  Returns (num_codes, num_points) and (num_factors, num_points), its layout.
  """
  representations = None
  factors = None
  i = 0
  while i < num_points:
    num_points_iter = min(num_points - i, batch_size)
    current_factors, current_observations = ground_truth_data.sample(
        num_points_iter, random_state)
    if i == 0:
      factors = current_factors
      representations = representation_function(current_observations)
    else:
      factors = np.vstack((factors, current_factors))
      representations = np.vstack(
          (representations, representation_function(current_observations)))
    i += num_points_iter
  return np.transpose(representations), np.transpose(factors)


def same_state(rs_a, rs_b):
  a, b = rs_a.get_state(), rs_b.get_state()
  return np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


@pytest.mark.parametrize('fake', [Fake(), NoisyFake()])
def test_generate_batch_factor_code_is_dislibs_transposed(fake):
  # 5 codes for 3 factors and 37 points in batches of 10: no square shape
  # can hide a transposition.
  matrix = np.random.RandomState(7).randn(3, 5)
  rs, reference_rs = np.random.RandomState(0), np.random.RandomState(0)
  codes, factors = sampling.generate_batch_factor_code(
      fake, linear(matrix), 37, rs, 10)
  reference_codes, reference_factors = dislib_generate_batch_factor_code(
      fake, linear(matrix), 37, reference_rs, 10)
  assert codes.shape == (37, 5) and factors.shape == (37, 3)
  np.testing.assert_array_equal(codes, reference_codes.T)
  np.testing.assert_array_equal(factors, reference_factors.T)
  assert same_state(rs, reference_rs)


def test_generate_batch_factor_code_rejects_bad_codes_and_sizes():
  with pytest.raises(ValueError, match='num_codes'):
    sampling.generate_batch_factor_code(
        Fake(), lambda x: flat(x).T, 8, np.random.RandomState(0), 8)
  with pytest.raises(ValueError, match='at least 1'):
    sampling.generate_batch_factor_code(
        Fake(), flat, 8, np.random.RandomState(0), 0)


def test_renders_deterministically_tells_the_fakes_apart():
  assert sampling.renders_deterministically(Fake())
  assert not sampling.renders_deterministically(NoisyFake())


@pytest.mark.parametrize('fake', [Fake(), NoisyFake()])
def test_codes_of_factors_equals_one_call(fake):
  factors = fake.sample_factors(50, np.random.RandomState(1))
  rs, reference_rs = np.random.RandomState(2), np.random.RandomState(2)
  codes = sampling.codes_of_factors(fake, flat, factors, rs,
                                    images_per_call=7)
  reference = flat(fake.sample_observations_from_factors(factors,
                                                         reference_rs))
  np.testing.assert_array_equal(codes, reference)
  assert same_state(rs, reference_rs)


def test_point_features_batches_deterministic_rendering():
  fake = Fake()
  draw = lambda rs: (rs.randint(3), (fake.sample_factors(4, rs),))
  labels, features = sampling.point_features(
      fake, flat, draw, lambda codes: codes.sum(axis=1), 10,
      np.random.RandomState(0), images_per_point=4, images_per_call=12)
  assert labels.shape == (10,) and features.shape == (10, 3)
  # 10 points of 4 images, 3 points per call: 4 calls, plus one probe.
  assert fake.render_calls == 4 + 1


def test_point_features_rejects_a_wrong_image_count():
  fake = Fake()
  draw = lambda rs: (0, (fake.sample_factors(3, rs),))
  with pytest.raises(ValueError, match='images per point'):
    sampling.point_features(fake, flat, draw, lambda c: c[:, 0], 2,
                            np.random.RandomState(0), images_per_point=4)
