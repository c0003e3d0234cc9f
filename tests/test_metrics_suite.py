"""Tests of the metric registry (bvae_jax.metrics) and the suite that runs it.

The suite must give the numbers of the per-metric functions, each called with
the draws disentanglement_lib makes for it. Those functions are tested
against disentanglement_lib in tests/test_metric_*.py. The samples here are
tiny, because these tests check the wiring, not the definitions.
"""

import numpy as np
import pytest
from test_metric_sampling import Fake, linear

from bvae_jax import config_defaults
from bvae_jax import experiment_config
from bvae_jax import metrics
from bvae_jax.metrics import beta_vae
from bvae_jax.metrics import dci
from bvae_jax.metrics import factor_vae
from bvae_jax.metrics import mig
from bvae_jax.metrics import modularity_explicitness
from bvae_jax.metrics import sampling
from bvae_jax.metrics import sap
from bvae_jax.metrics import suite

SUITE_ORDER = ('mig', 'modularity_explicitness', 'dci', 'sap', 'beta_vae',
               'factor_vae')


def tiny_eval_config(**overrides):
  config = config_defaults.base_config().eval
  config.update({'num_train': 120, 'num_test': 60, 'batch_size': 4,
                 'num_variance_estimate': 120, **overrides})
  return config


def fake():
  """Two small factors: DCI's boosted trees, one per class, stay few."""
  return Fake(sizes=(2, 3))


def representation():
  """A fixed random linear map of the fake's two factors to three codes."""
  return linear(np.random.RandomState(1).normal(size=(2, 3)))


@pytest.fixture(scope='module')
def full_suite():
  """(eval config, (metrics, seconds, draws)) of the whole suite on a fake."""
  config = tiny_eval_config()
  return config, suite.compute_suite(fake(), representation(), config)


def test_registry_lists_the_six_metrics_in_suite_order():
  assert metrics.names() == SUITE_ORDER
  assert experiment_config.EVAL_METRICS == SUITE_ORDER
  assert tuple(config_defaults.base_config().eval.metrics) == ('all',)
  assert experiment_config.resolve(
      config_defaults.base_config()).eval.metrics == SUITE_ORDER
  positions = [metrics.get(name).SUITE_POSITION for name in SUITE_ORDER]
  assert positions == sorted(set(positions))
  for name in SUITE_ORDER:
    module = metrics.get(name)
    assert isinstance(module.USES_SHARED_CODES, bool)
    assert callable(module.compute) and callable(module.image_count)
  assert suite.shared_code_metrics() == SUITE_ORDER[:4]


def test_unknown_metric_is_rejected_naming_the_field():
  config = config_defaults.base_config()
  config.eval.metrics = ('mig', 'irs')
  with pytest.raises(ValueError, match=r"config\.eval\.metrics .*'irs'"):
    experiment_config.resolve(config)
  for building_block in ('sampling', 'suite', 'irs'):
    with pytest.raises(ValueError,
                       match=rf"config\.eval\.metrics .*'{building_block}'"):
      metrics.get(building_block)
  ground_truth = fake()
  with pytest.raises(ValueError, match=r"config\.eval\.metrics .*'irs'"):
    suite.compute_suite(ground_truth, representation(), tiny_eval_config(
        metrics=('mig', 'irs')))
  assert ground_truth.render_calls == 0  # Refused before drawing anything.


def test_suite_gives_the_numbers_of_the_metric_functions(full_suite):
  config, (scores, seconds, draws) = full_suite
  ground_truth, fn = fake(), representation()
  random_state = np.random.RandomState(config.seed)
  train = sampling.generate_batch_factor_code(
      ground_truth, fn, config.num_train, random_state, 16)
  test = sampling.generate_batch_factor_code(
      ground_truth, fn, config.num_test, random_state, 16)
  sizes = dict(batch_size=config.batch_size, num_train=config.num_train,
               num_eval=config.num_test)
  expected = {
      'mig': mig.mig(*train, num_bins=config.num_bins),
      'modularity_explicitness': modularity_explicitness.modularity_explicitness(
          *train, *test, num_bins=config.num_bins),
      'dci': dci.dci(*train, *test),
      'sap': sap.sap(*train, *test),
      'beta_vae': beta_vae.beta_vae_score(
          ground_truth, fn, np.random.RandomState(config.seed), **sizes),
      'factor_vae': factor_vae.factor_vae_score(
          ground_truth, fn, np.random.RandomState(config.seed),
          num_variance_estimate=config.num_variance_estimate, **sizes),
  }
  assert list(scores) == list(SUITE_ORDER)
  # The suite looked the codes up (code_table), the functions encoded.
  assert scores == expected
  assert list(seconds) == ['code_table', 'draw_and_encode_codes',
                           *SUITE_ORDER]
  np.testing.assert_array_equal(draws['codes_train'], train[0])
  np.testing.assert_array_equal(draws['factors_train'], train[1])


def test_a_subset_gives_the_full_suites_numbers_in_suite_order(full_suite):
  config, (full, _, full_draws) = full_suite
  subset = config.copy_and_resolve_references()
  subset.metrics = ('factor_vae', 'mig', 'mig')  # Any order, repeats.
  scores, seconds, draws = suite.compute_suite(fake(), representation(),
                                               subset)
  assert list(scores) == ['mig', 'factor_vae']
  assert scores == {name: full[name] for name in scores}
  assert list(seconds) == ['code_table', 'draw_and_encode_codes', 'mig',
                           'factor_vae']
  # The figures need the shared codes whatever the metrics.
  np.testing.assert_array_equal(draws['codes_train'],
                                full_draws['codes_train'])


@pytest.mark.parametrize('names', [SUITE_ORDER, ('dci',), ('beta_vae',)])
def test_image_count_is_what_the_suite_encodes(names):
  # Without the code table, which encodes each combination instead.
  config = tiny_eval_config(num_train=20, num_test=10, metrics=names,
                            code_table=False)
  encoded = [0]
  fn = representation()

  def counting_fn(observations):
    encoded[0] += len(observations)
    return fn(observations)

  with pytest.MonkeyPatch.context() as patch:
    # Only the encoding is counted: the classifiers on shared codes need not
    # run.
    for name in suite.shared_code_metrics():
      patch.setattr(metrics.get(name), 'compute', lambda inputs, c: {})
    suite.compute_suite(fake(), counting_fn, config)
  assert encoded[0] == suite.image_count(config)
