"""Tests of metrics.code_table: looking codes up gives the suite's numbers.

The suite encodes each factor combination once when that is exact
(`suite.uses_code_table`). The pin here is the end-to-end one: on a real
(randomly initialised) encoder and real dSprites renders, the whole suite
gives the same scores with and without the table.
"""

import jax
import numpy as np
import pytest
from test_metric_sampling import Fake, NoisyFake, linear
from test_metrics_suite import tiny_eval_config

from bvae_jax import config_defaults
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import dsprites
from bvae_jax.datasets import ground_truth
from bvae_jax.evaluation import evaluate
from bvae_jax.metrics import code_table
from bvae_jax.metrics import sampling
from bvae_jax.metrics import suite

# A subset of dSprites' factor values (every shape; 2 scales, 4 rotations,
# 6 × 6 positions): 864 combinations, real renders.
SUBSET_VALUES = ((0, 1, 2), (0, 5), (0, 10, 20, 30), (0, 6, 12, 18, 24, 31),
                 (0, 6, 12, 18, 24, 31))


def dsprites_subset():
  values = [np.array(v) for v in SUBSET_VALUES]

  def render(factors):
    return dsprites.render(np.stack(
        [values[j][factors[:, j]] for j in range(len(values))], axis=1))

  return ground_truth.RenderedGroundTruth(
      dsprites.FACTOR_NAMES, [len(v) for v in values], (64, 64, 1), render,
      max_pixel_value=1)


def random_encoder():
  """The representation function of a randomly initialised VAE."""
  config = config_defaults.base_config()
  model = step_lib.create_model(config)
  params = model.init(jax.random.key(0), np.zeros((1, 64, 64, 1), np.float32),
                      jax.random.key(1))['params']
  representation_fn = evaluate.make_representation_fn(model, params,
                                                      encode_batch_size=256)
  # A random encoder's means barely move (std < 0.05, FactorVAE's pruning
  # threshold); scaled up, every metric has something to score.
  return lambda observations: 50. * representation_fn(observations)


@pytest.fixture(scope='module')
def encoder():
  return random_encoder()


def test_all_factors_enumerates_in_index_order():
  fake = Fake(sizes=(3, 4, 5))
  factors = code_table.all_factors(fake, 0, 60)
  np.testing.assert_array_equal(fake.factors_to_index(factors), np.arange(60))
  np.testing.assert_array_equal(code_table.all_factors(fake, 7, 9),
                                factors[7:9])


def test_table_rows_are_the_codes_of_their_factors():
  fake = Fake(sizes=(3, 4, 5))
  representation_fn = linear(np.random.RandomState(0).normal(size=(3, 2)))
  table = code_table.tabulate(fake, representation_fn, chunk=7)
  factors = fake.sample_factors(50, np.random.RandomState(1))
  direct = representation_fn(fake.sample_observations_from_factors(factors,
                                                                   None))
  np.testing.assert_allclose(
      table.sample_observations_from_factors(factors, None), direct,
      rtol=1e-6)
  assert table.factor_names == fake.factor_names
  assert table.factors_num_values == fake.factors_num_values


def test_table_refuses_wrong_length():
  with pytest.raises(ValueError, match='5 codes for 60 factor combinations'):
    code_table.CodeTable(Fake(sizes=(3, 4, 5)), np.zeros((5, 2)))


@pytest.mark.parametrize('why_not, ground_truth_data, overrides', [
    ('sampled representation', Fake(sizes=(2, 3)),
     {'representation': 'sampled'}),
    ('switched off', Fake(sizes=(2, 3)), {'code_table': False}),
    ('rendering draws noise', NoisyFake(sizes=(2, 3)), {}),
    ('more combinations than images', Fake(sizes=(50, 50, 50)), {}),
])
def test_suite_keeps_drawing_images_where_a_table_is_not_exact_or_cheaper(
    why_not, ground_truth_data, overrides):
  del why_not  # Names the case.
  assert not suite.uses_code_table(ground_truth_data,
                                   tiny_eval_config(**overrides))


def test_record_set_with_missing_combinations_is_not_tabulated():
  records = ground_truth.RecordGroundTruth(
      ('a', 'b'), (2, 3), (1, 1, 1), images=None,
      record_of_index=np.array([0, 1, 2, 3, 4, -1]))
  assert not code_table.is_exact(records, deterministic_representation=True)


def test_suite_uses_the_table_and_encodes_each_combination_once():
  fake = Fake(sizes=(2, 3))
  calls = []

  def counting(observations):
    calls.append(len(observations))
    return linear(np.eye(2))(observations)

  config = tiny_eval_config()
  assert suite.uses_code_table(fake, config)
  _, seconds, _ = suite.compute_suite(fake, counting, config)
  assert sum(calls) == 6
  assert 'code_table' in seconds


@pytest.mark.slow
def test_whole_suite_same_scores_with_and_without_table_on_real_encoder(
    users_xla_optimizations):
  # Its own encoder, compiled with the optimisations users' runs get.
  encoder = random_encoder()
  data = dsprites_subset()
  config = tiny_eval_config(num_train=300, num_test=150, batch_size=8,
                            num_variance_estimate=300)
  assert suite.uses_code_table(data, config)
  with_table, seconds, draws_table = suite.compute_suite(data, encoder, config)
  assert 'code_table' in seconds
  config.code_table = False
  without, seconds, draws_direct = suite.compute_suite(data, encoder, config)
  assert 'code_table' not in seconds
  np.testing.assert_array_equal(draws_table['factors_train'],
                                draws_direct['factors_train'])
  # Bitwise: every encoder call has ≥ 64 rows per device (evaluate.py).
  np.testing.assert_array_equal(draws_table['codes_train'],
                                draws_direct['codes_train'])
  assert with_table == without
  assert with_table['factor_vae']['num_active_dims'] > 0


@pytest.mark.slow
def test_table_codes_match_encoding_of_drawn_images(encoder):
  data = dsprites_subset()
  table = code_table.tabulate(data, encoder)
  factors = data.sample_factors(64, np.random.RandomState(3))
  direct = sampling.encode(
      encoder, data.sample_observations_from_factors(factors, None))
  np.testing.assert_array_equal(
      table.sample_observations_from_factors(factors, None), direct)


@pytest.mark.slow
def test_encoder_codes_do_not_depend_on_call_size(encoder):
  data = dsprites_subset()
  observations = data.sample_observations(96, np.random.RandomState(4))
  whole = sampling.encode(encoder, observations)
  for size in (1, 16, 40):
    np.testing.assert_array_equal(np.concatenate([
        encoder(observations[start:start + size])
        for start in range(0, 96, size)]), whole)
