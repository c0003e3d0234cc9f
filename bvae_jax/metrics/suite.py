"""The metric suite: draws the shared codes once, then runs each metric by name.

`compute_suite` is what evaluation runs. It takes the names in
`config.eval.metrics` and the sample sizes of `config.eval`, and runs the
metrics in suite order (`metrics.names()`). MIG, modularity/explicitness, DCI
and SAP each draw the same points in disentanglement_lib, so the suite draws
and encodes those points once (`sampling.draw_shared_codes`) and the four
read them. The β-VAE and FactorVAE scores draw their own points. The suite
logs how many images it has encoded, the rate and the ETA as it goes, and it
times each part.

When the codes are a function of the factors alone (the posterior mean of a
data set that renders each combination to one image) and there are fewer
combinations than images to encode, the suite encodes every combination once
and the metrics look codes up (`code_table`; `config.eval.code_table=False`
turns this off). The metrics draw the same random numbers either way.
"""

import time
from typing import Callable

from absl import logging
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax import metrics
from bvae_jax.metrics import code_table
from bvae_jax.metrics import sampling


def in_suite_order(names) -> tuple[str, ...]:
  """`names` without repeats, in suite order (`metrics.names()`); ('all',),
  a config's default (config_defaults.base_config), is every metric.

  Raises:
    ValueError: for a name that is not a metric, listing the known ones.
  """
  names = tuple(names)
  if names == ('all',):
    return metrics.names()
  for name in names:
    metrics.get(name)
  return tuple(name for name in metrics.names() if name in names)


def shared_code_metrics() -> tuple[str, ...]:
  """The metrics that read the shared codes, in suite order."""
  return tuple(name for name in metrics.names()
               if metrics.get(name).USES_SHARED_CODES)


def image_count(eval_config) -> int:
  """How many observations the suite encodes (for progress and benchmarks)."""
  c = eval_config
  return c.num_train + c.num_test + sum(  # The shared codes, then the rest.
      metrics.get(name).image_count(c) for name in in_suite_order(c.metrics))


def run(names, inputs: sampling.MetricInputs, eval_config
        ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
  """Computes the metrics `names` on `inputs`, in suite order.

  Args:
    names: metric names, in any order.
    inputs: the shared codes and, for the metrics that draw their own points,
      the ground truth and representation function.
    eval_config: `config.eval`.

  Returns:
    (scores by metric name, seconds by metric name).

  Raises:
    ValueError: for a name that is not a metric.
  """
  scores, seconds = {}, {}
  for name in in_suite_order(names):
    metric = metrics.get(name)
    images = metric.image_count(eval_config)
    if images:
      logging.info('Metric %s: encoding %d images.', name, images)
    start = time.perf_counter()
    scores[name] = {key: float(value) for key, value in
                    metric.compute(inputs, eval_config).items()}
    seconds[name] = time.perf_counter() - start
    logging.info('Metric %s: %s (%.1f s).', name, scores[name], seconds[name])
  return scores, seconds


def compute_suite(ground_truth, representation_fn, eval_config
                  ) -> tuple[dict[str, dict[str, float]], dict[str, float],
                             dict[str, np.ndarray]]:
  """Computes the metrics of `eval_config.metrics`.

  The suite always draws the shared codes, even when no requested metric
  reads them, because the evaluation figures are drawn from them.

  Args:
    ground_truth: a GroundTruthData.
    representation_fn: observations -> codes.
    eval_config: ConfigDict with seed, num_train, num_test, batch_size,
      num_variance_estimate, num_bins and metrics (the names to compute).

  Returns:
    (metrics by name, seconds by name, 'draw_and_encode_codes' and, when
     used, 'code_table', {'codes_train', 'factors_train'} of the shared
     draws).

  Raises:
    ValueError: for a name in `eval_config.metrics` that is not a metric.
  """
  c = eval_config
  names = in_suite_order(c.metrics)
  timings = {}
  if uses_code_table(ground_truth, c):
    logging.info('Encoding each of the %d factor combinations once instead '
                 'of %d drawn images (config.eval.code_table).',
                 code_table.num_combinations(ground_truth), image_count(c))
    start = time.perf_counter()
    ground_truth = code_table.tabulate(ground_truth, representation_fn)
    representation_fn = code_table.identity
    timings['code_table'] = time.perf_counter() - start
  else:
    representation_fn = _reporting_progress(representation_fn, image_count(c))
  readers = [name for name in names if name in shared_code_metrics()]
  logging.info('Drawing and encoding %d + %d points shared by %s.',
               c.num_train, c.num_test, ', '.join(readers) or 'the figures')
  start = time.perf_counter()
  inputs = sampling.draw_shared_codes(ground_truth, representation_fn,
                                      c.num_train, c.num_test, c.seed)
  timings['draw_and_encode_codes'] = time.perf_counter() - start
  scores, seconds = run(names, inputs, c)
  timings.update(seconds)
  draws = {'codes_train': inputs.codes_train,
           'factors_train': inputs.factors_train}
  return scores, timings, draws


def uses_code_table(ground_truth, eval_config) -> bool:
  """Whether the suite encodes every factor combination once (see above).

  Only when `eval_config.code_table` allows it, the representation is the
  posterior mean, the lookup is exact (`code_table.is_exact`) and there are
  fewer combinations than the suite would encode.
  """
  c = eval_config
  return (c.get('code_table', True)
          and code_table.num_combinations(ground_truth) < image_count(c)
          and code_table.is_exact(ground_truth, c.representation == 'mean'))


def _reporting_progress(representation_fn, total_images, every_seconds=30.0
                        ) -> Callable[[np.ndarray], np.ndarray]:
  """Wraps `representation_fn` to log images encoded, images/s and the ETA."""
  progress = metric_logging.ProgressReporter(total_images, 0)
  done = [0]
  last_log = [time.monotonic()]

  def reporting_fn(observations):
    codes = representation_fn(observations)
    done[0] += len(observations)
    if time.monotonic() - last_log[0] >= every_seconds:
      timing = progress.report(done[0])
      logging.info('Encoded %d/%d images, %.0f images/s, ETA %s.', done[0],
                   total_images, timing['steps_per_sec'],
                   metric_logging.format_eta(timing['eta_seconds']))
      last_log[0] = time.monotonic()
    return codes

  return reporting_fn
