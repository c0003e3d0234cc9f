"""Tests of metrics.gradient_boosting against sklearn's classifier.

The reference is `sklearn.ensemble.GradientBoostingClassifier(**dci.GBT_PARAMS)`
on the same data: trees, leaf values, raw predictions, predictions and
feature importances must agree (the implementation reproduces sklearn's
roundings, so in practice they are equal, not just close). That holds with
numpy's AVX2 kernels: tests/numpy_kernels.py says how the tests marked
`requires_avx2_kernels` run on an AVX-512 CPU.
"""

import numpy as np
import pytest
from sklearn import ensemble

from bvae_jax.metrics import dci
from bvae_jax.metrics import gradient_boosting
import numpy_kernels

# (num_points, num_classes, n_estimators): binary (one tree per stage),
# multiclass, and many classes like dSprites' positions (fewer stages, so
# that the file stays fast).
CASES = ((2000, 2, 100), (1000, 3, 50), (800, 40, 15))


def draw(num_points, num_classes, seed):
  """10 float32 codes: 7 noisy mixes of the label, 1 constant, 2 noise."""
  rs = np.random.RandomState(seed)
  labels = rs.randint(num_classes, size=num_points)
  signal = np.stack([np.cos(2.1 * labels), np.sin(1.3 * labels),
                     labels / num_classes], axis=1)
  codes = signal @ rs.randn(3, 7) + 0.3 * rs.randn(num_points, 7)
  codes = np.hstack([codes, np.full((num_points, 1), 0.5),
                     rs.randn(num_points, 2)])
  return codes.astype(np.float32), labels


def fit_both(codes, labels, **params):
  params = dict(dci.GBT_PARAMS, **params)
  reference = ensemble.GradientBoostingClassifier(**params).fit(codes, labels)
  ours = gradient_boosting.GradientBoostingClassifier(**params).fit(
      codes, labels)
  return reference, ours


@pytest.fixture(scope='module', params=CASES,
                ids=[f'{c}_classes' for _, c, _ in CASES])
def fitted(request):
  num_points, num_classes, n_estimators = request.param
  codes, labels = draw(num_points, num_classes, seed=num_classes)
  reference, ours = fit_both(codes, labels, n_estimators=n_estimators)
  return codes, labels, reference, ours


def assert_same_trees(reference, ours):
  assert ours.estimators_.shape == reference.estimators_.shape
  for stage, (reference_stage, our_stage) in enumerate(
      zip(reference.estimators_, ours.estimators_)):
    for k, (reference_tree, tree) in enumerate(zip(reference_stage,
                                                   our_stage)):
      expected = reference_tree.tree_
      where = f'stage {stage}, tree {k}'
      # Same splits: structure, features and thresholds exactly.
      for name in ('children_left', 'children_right', 'feature', 'threshold',
                   'n_node_samples'):
        np.testing.assert_array_equal(getattr(tree, name),
                                      getattr(expected, name),
                                      err_msg=f'{name}, {where}')
      # Leaf values (the Newton steps) and impurities up to rounding.
      np.testing.assert_allclose(tree.value, expected.value[:, 0, 0],
                                 rtol=1e-9, atol=1e-15, err_msg=where)
      np.testing.assert_allclose(tree.impurity, expected.impurity,
                                 rtol=1e-9, atol=1e-15, err_msg=where)


@numpy_kernels.requires_avx2_kernels
def test_trees_are_sklearns(fitted):
  _, _, reference, ours = fitted
  assert_same_trees(reference, ours)


@numpy_kernels.requires_avx2_kernels
def test_predictions_are_sklearns(fitted):
  codes, labels, reference, ours = fitted
  np.testing.assert_array_equal(ours.classes_, reference.classes_)
  raw = reference.decision_function(codes)
  np.testing.assert_allclose(ours.decision_function(codes), raw, rtol=1e-9,
                             atol=1e-12)
  np.testing.assert_allclose(ours.train_raw_predictions_,
                             raw.reshape(len(codes), -1), rtol=1e-9,
                             atol=1e-12)
  np.testing.assert_array_equal(ours.train_predictions_,
                                reference.predict(codes))
  np.testing.assert_array_equal(ours.predict(codes), reference.predict(codes))
  # New points, from the same distribution (labels unused).
  new_codes, _ = draw(500, len(reference.classes_), seed=99)
  np.testing.assert_array_equal(ours.predict(new_codes),
                                reference.predict(new_codes))
  np.testing.assert_allclose(ours.decision_function(new_codes),
                             reference.decision_function(new_codes),
                             rtol=1e-9, atol=1e-12)


@numpy_kernels.requires_avx2_kernels
def test_feature_importances_are_sklearns(fitted):
  _, _, reference, ours = fitted
  np.testing.assert_allclose(ours.feature_importances_,
                             reference.feature_importances_, rtol=1e-9,
                             atol=1e-15)
  # The constant code is never split on.
  assert ours.feature_importances_[7] == 0.


@numpy_kernels.requires_avx2_kernels
def test_duplicated_codes_break_ties_as_sklearn():
  # Two copies of a code split every node the same way: exact ties, which
  # sklearn breaks by its (seeded) order of visiting features.
  codes, labels = draw(600, 5, seed=3)
  codes = np.hstack([codes, codes[:, :2]])
  reference, ours = fit_both(codes, labels, n_estimators=20)
  assert_same_trees(reference, ours)
  np.testing.assert_allclose(ours.feature_importances_,
                             reference.feature_importances_, rtol=1e-9,
                             atol=1e-15)


@numpy_kernels.requires_avx2_kernels
def test_unseeded_draws_as_sklearn_from_the_global_state():
  # disentanglement_lib's classifiers are unseeded; with duplicated codes the
  # seeds decide splits.
  codes, labels = draw(300, 3, seed=5)
  codes = np.hstack([codes, codes[:, :3]])
  np.random.seed(0)
  reference = ensemble.GradientBoostingClassifier(
      **dict(dci.GBT_PARAMS, random_state=None, n_estimators=10)).fit(
          codes, labels)
  np.random.seed(0)
  ours = gradient_boosting.GradientBoostingClassifier(
      **dict(dci.GBT_PARAMS, random_state=None, n_estimators=10)).fit(
          codes, labels)
  assert_same_trees(reference, ours)


def ulp_chains(labels, num_chains, rs):
  """float32 codes in chains of distinct values 1 ulp apart.

  sklearn sees no split inside a chain (each value is within
  FEATURE_THRESHOLD = 1e-7 of the previous one), so its criterion moves
  whole chains at once, sometimes subtracting from the node's end.
  """
  chain = (labels + rs.randint(2, size=labels.size)) % num_chains
  bits = (np.float32(1.) + np.float32(.1) * chain).astype(np.float32).view(
      np.int32)
  for c in range(num_chains):
    members = np.flatnonzero(chain == c)
    bits[members] += rs.permutation(members.size).astype(np.int32)
  return bits.view(np.float32)


@numpy_kernels.requires_avx2_kernels
def test_values_within_feature_threshold_are_sklearns():
  rs = np.random.RandomState(4)
  codes, labels = draw(600, 5, seed=4)
  codes[:, 0] = ulp_chains(labels, 3, rs)
  codes[:, 1] = ulp_chains(labels, 4, rs)
  assert len(np.unique(codes[:, 0])) == 600  # distinct, so sorted alike
  for min_samples_leaf in (1, 4):
    reference, ours = fit_both(codes, labels, n_estimators=20,
                               min_samples_leaf=min_samples_leaf)
    assert_same_trees(reference, ours)
    np.testing.assert_allclose(ours.feature_importances_,
                               reference.feature_importances_, rtol=1e-9,
                               atol=1e-15)


def test_exact_proxies_are_sklearns_criterion_loop():
  """Brute force against node_split_best's loop over one feature."""
  sklearn_proxies = gradient_boosting._sklearn_proxies  # pylint: disable=protected-access
  threshold = np.float32(1e-7)

  def sklearn_loop(ys, values, total, lo):
    # next_p, the min_samples_leaf check, RegressionCriterion.update and
    # MSE.proxy_impurity_improvement, transcribed.
    m = len(ys)
    proxies, pos, sum_left, p = {}, 0, 0., 0
    while p < m:
      p += 1
      while p < m and values[p] <= values[p - 1] + threshold:
        p += 1
      if p == m or p < lo or m - p < lo:
        continue
      if p - pos <= m - p:
        for i in range(pos, p):
          sum_left += ys[i]
      else:
        sum_left = total
        for i in range(m - 1, p - 1, -1):
          sum_left -= ys[i]
      pos = p
      sum_right = total - sum_left
      proxies[p] = sum_left * sum_left / p + sum_right * sum_right / (m - p)
    return proxies

  rs = np.random.RandomState(0)
  for _ in range(500):
    m, lo = rs.randint(4, 60), rs.randint(1, 3)
    # Sorted float32 values, steps of 1 ulp (skipped) or more.
    steps = np.where(rs.rand(m) < rs.rand(), 1, rs.randint(2, 50, m))
    values = (np.float32(1.).view(np.int32) + np.cumsum(steps)).astype(
        np.int32).view(np.float32)
    ys = rs.randn(m)
    total = float(np.cumsum(ys)[-1])
    expected = sklearn_loop(ys, values, total, lo)
    if not expected:
      continue
    cols = np.array(sorted(expected)) - lo
    close = np.flatnonzero(values[1:] <= values[:-1] + threshold)
    starts = np.flatnonzero(np.diff(close, prepend=-2) != 1)
    tie_length = np.diff(np.append(starts, close.size)).max(initial=0) + 1
    # The shortcut near the end (true tie_length) and the whole row.
    for length in (tie_length, m):
      np.testing.assert_array_equal(
          sklearn_proxies(ys, np.arange(m), values, total, lo, cols, length),
          [expected[p] for p in sorted(expected)])


def test_partition_is_sklearns_swap_loop():
  """Brute force against DensePartitioner.partition_samples_final."""
  partition = gradient_boosting._sklearn_partition  # pylint: disable=protected-access

  def sklearn_loop(order, goes_left):
    samples, left = list(order), dict(zip(order, goes_left))
    start, end = 0, len(samples)
    while start < end:
      if left[samples[start]]:
        start += 1
      else:
        end -= 1
        samples[start], samples[end] = samples[end], samples[start]
    return samples

  rs = np.random.RandomState(0)
  for _ in range(3000):
    size = rs.randint(2, 12)
    goes_left = rs.rand(size) < rs.rand()
    order = rs.permutation(size)
    np.testing.assert_array_equal(partition(order, goes_left),
                                  sklearn_loop(order, goes_left))


@numpy_kernels.requires_avx2_kernels
def test_dci_is_the_sklearn_based_dci():
  rs = np.random.RandomState(0)
  sizes = (2, 3, 6)

  def sample(num_points):
    factors = np.stack([rs.randint(s, size=num_points) for s in sizes], 1)
    return factors @ rs.randn(3, 5) + 0.3 * rs.randn(num_points, 5), factors

  codes_train, factors_train = sample(400)
  codes_test, factors_test = sample(200)
  importance = np.zeros((5, 3))
  train_accuracies, test_accuracies = [], []
  for j in range(3):
    model = ensemble.GradientBoostingClassifier(**dci.GBT_PARAMS)
    model.fit(codes_train, factors_train[:, j])
    importance[:, j] = np.abs(model.feature_importances_)
    train_accuracies.append(
        np.mean(model.predict(codes_train) == factors_train[:, j]))
    test_accuracies.append(
        np.mean(model.predict(codes_test) == factors_test[:, j]))
  expected = {
      'informativeness_train': np.mean(train_accuracies),
      'informativeness_test': np.mean(test_accuracies),
      'disentanglement': dci.disentanglement(importance),
      'completeness': dci.completeness(importance),
  }
  result = dci.dci(codes_train, factors_train, codes_test, factors_test,
                   n_jobs=1)
  assert result.keys() == expected.keys()
  for name, value in expected.items():
    assert result[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_rejects_what_it_does_not_implement():
  with pytest.raises(ValueError, match='subsample'):
    gradient_boosting.GradientBoostingClassifier(subsample=0.5)
  with pytest.raises(ValueError, match='criterion'):
    gradient_boosting.GradientBoostingClassifier(criterion='friedman_mse')
  with pytest.raises(ValueError, match='max_depth'):
    gradient_boosting.GradientBoostingClassifier(max_depth=None)
  with pytest.raises(ValueError, match='min_samples_leaf'):
    gradient_boosting.GradientBoostingClassifier(min_samples_leaf=0.1)
  codes, _ = draw(20, 2, seed=0)
  with pytest.raises(ValueError, match='1 class'):
    gradient_boosting.GradientBoostingClassifier().fit(codes, np.zeros(20))


@numpy_kernels.requires_avx2_kernels
def test_codes_of_a_collapsed_encoder_are_sklearns_and_fast():
  # A collapsed encoder maps every image to nearly the same code: a few
  # distinct float32 values per latent, so almost every candidate split is a
  # tie sklearn skips. Skipping them near the best one round at a time took
  # a round per tie: the step-10,000 DCI of a collapsed 50k-study run ran
  # for over 20 minutes (30 s for a healthy one).
  rs = np.random.RandomState(6)
  labels = rs.randint(6, size=3000)
  codes = rs.randint(3, size=(3000, 10)).astype(np.float32) * np.float32(1e-3)
  codes[:, 0] += np.float32(1e-3) * (labels % 2)  # A little signal.
  reference, ours = fit_both(codes, labels, n_estimators=10)
  assert_same_trees(reference, ours)
  np.testing.assert_allclose(ours.feature_importances_,
                             reference.feature_importances_, rtol=1e-9,
                             atol=1e-15)
