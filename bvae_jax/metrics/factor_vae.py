"""The FactorVAE disentanglement score.

Kim & Mnih 2018, "Disentangling by Factorising", as computed by
disentanglement_lib's `evaluation/metrics/factor_vae.py` (`compute_factor_vae`,
`_compute_variances`, `_prune_dims`, `_generate_training_sample`,
`_generate_training_batch`; Locatello et al. 2019) with the study's settings
(batch 64, 10,000 train, 5,000 eval, 10,000 points for the variances,
`prune_dims.threshold = 0.05`). Followed exactly:

* Global variances: `np.var(codes, axis=0, ddof=1)` of the codes of
  `num_variance_estimate` random points; a code is active when its standard
  deviation is >= `prune_std`.
* Each point: a factor index uniform in [0, num_factors), `batch_size` factor
  rows with that factor set to the first row's value, rendered and encoded;
  the vote goes to the active code with the smallest
  `np.var(codes, axis=0, ddof=1) / global variance` (the first on ties).
  Random draws come in disentanglement_lib's order (variance points; then
  per point: index, batch, rendering), so the same RandomState gives the
  same factors; rendering and encoding are batched over many points
  (`sampling.point_features`).
* Majority vote: each code predicts the factor that voted for it most often
  in training (the first such factor on ties, a code without votes predicts
  factor 0); accuracy = the share of votes, training or evaluation, cast for
  the factor their code predicts.
* No active code: both accuracies 0 and no further draws, as in
  disentanglement_lib, plus a log line.

Layout: our votes matrix is (num_codes, num_factors), like the DCI
importance matrix; disentanglement_lib's is (num_factors, columns), and its
column is the code's position among the active codes, not its index. Both
label the same votes, so the accuracies are the same.

One difference: disentanglement_lib reports `num_active_dims` as
`len(active_dims)` of a boolean mask, that is the number of all codes
whenever one is active; we report the number of active codes (0 when none,
as disentanglement_lib does). No score depends on it.
"""

import logging

import numpy as np

from bvae_jax.metrics import sampling


def factor_vae_score(ground_truth, representation_fn, random_state,
                     batch_size=64, num_train=10000, num_eval=5000,
                     num_variance_estimate=10000, prune_std=0.05,
                     images_per_call=4096):
  """FactorVAE score with disentanglement_lib's definition and defaults.

  Args:
    ground_truth: a `GroundTruthData`.
    representation_fn: float32 (n, H, W, C) observations -> (n, num_codes).
    random_state: np.random.RandomState; the only source of randomness.
    batch_size: observations per point (one factor fixed).
    num_train: points that train the majority vote.
    num_eval: points that evaluate it.
    num_variance_estimate: points for the global variances.
    prune_std: codes whose global standard deviation is below this are
      inactive (disentanglement_lib's `prune_dims.threshold`).
    images_per_call: images per call of `representation_fn` (whole points);
      changes no number.

  Returns:
    {'train_accuracy', 'eval_accuracy'} floats, {'num_active_dims'} int.
  """
  factors = ground_truth.sample_factors(num_variance_estimate, random_state)
  codes = sampling.codes_of_factors(ground_truth, representation_fn, factors,
                                    random_state, images_per_call)
  global_variances = np.var(codes, axis=0, ddof=1)
  active = np.sqrt(global_variances) >= prune_std
  if not active.any():
    logging.warning('FactorVAE score: no code has a standard deviation >= '
                    '%g; scoring 0.', prune_std)
    return {'train_accuracy': 0., 'eval_accuracy': 0., 'num_active_dims': 0}

  def votes(num_points):
    return _votes(ground_truth, representation_fn, batch_size, num_points,
                  random_state, global_variances, active, images_per_call)

  train_votes = votes(num_train)
  classifier = majority_vote_classifier(train_votes)
  train_accuracy = vote_accuracy(train_votes, classifier)
  eval_accuracy = vote_accuracy(votes(num_eval), classifier)
  return {'train_accuracy': float(train_accuracy),
          'eval_accuracy': float(eval_accuracy),
          'num_active_dims': int(active.sum())}


def majority_vote_classifier(votes):
  """The factor each code predicts: votes (num_codes, num_factors) -> ints."""
  return np.argmax(votes, axis=1)


def vote_accuracy(votes, classifier):
  """Share of `votes` (num_codes, num_factors) cast for the predicted factor."""
  return np.sum(votes[np.arange(len(votes)), classifier]) * 1. / np.sum(votes)


def draw_point(ground_truth, batch_size, random_state):
  """One point's label and factor batch, drawn as disentanglement_lib does.

  Returns:
    (factor index, (factors,)), factors (batch_size, num_factors) with the
    factor index's column constant.
  """
  factor_index = random_state.randint(ground_truth.num_factors)
  factors = ground_truth.sample_factors(batch_size, random_state)
  factors[:, factor_index] = factors[0, factor_index]
  return factor_index, (factors,)


def least_variance_codes(codes, global_variances, active):
  """Active code of least relative variance per point.

  Args:
    codes: (points, batch, num_codes).
    global_variances: (num_codes,).
    active: (num_codes,) bool.

  Returns:
    int (points,) code indices (into all codes, not only the active ones).
  """
  local_variances = np.var(codes, axis=1, ddof=1)
  position = np.argmin(
      local_variances[:, active] / global_variances[active], axis=1)
  return np.flatnonzero(active)[position]


def _votes(ground_truth, representation_fn, batch_size, num_points,
           random_state, global_variances, active, images_per_call):
  """Votes (num_codes, num_factors) of `num_points` new points."""
  labels, argmins = sampling.point_features(
      ground_truth, representation_fn,
      lambda rs: draw_point(ground_truth, batch_size, rs),
      lambda codes: least_variance_codes(codes, global_variances, active),
      num_points, random_state, images_per_point=batch_size,
      images_per_call=images_per_call)
  votes = np.zeros((len(global_variances), ground_truth.num_factors), np.int64)
  np.add.at(votes, (argmins, labels), 1)
  return votes


# The suite's entry point (the protocol is in bvae_jax/metrics/__init__.py).
SUITE_POSITION = 60
USES_SHARED_CODES = False


def image_count(eval_config) -> int:
  """Images `compute` encodes: the variance points, then a batch per point."""
  c = eval_config
  return c.num_variance_estimate + c.batch_size * (c.num_train + c.num_test)


def compute(inputs: sampling.MetricInputs, eval_config) -> dict[str, float]:
  """`factor_vae_score` with its own `RandomState(eval_config.seed)`.

  disentanglement_lib seeds every metric alike, so this draws the same
  random numbers whatever else the suite computes.
  """
  c = eval_config
  return factor_vae_score(
      inputs.ground_truth, inputs.representation_fn,
      np.random.RandomState(c.seed), batch_size=c.batch_size,
      num_train=c.num_train, num_eval=c.num_test,
      num_variance_estimate=c.num_variance_estimate)
