r"""Evaluation of trained models: the disentanglement metric suite from Orbax.

  python -m bvae_jax.main --config=configs/capacity.py --workdir=DIR --mode=evaluate [--step=N]

restores the checkpoint of DIR (the latest, or step N), encodes the data set's
ground truth and computes every metric of `bvae_jax.metrics` with the sample
sizes of disentanglement_lib's evaluation (Locatello et al. 2019):

  MIG, modularity/explicitness, DCI, SAP   10,000 train + 5,000 test points,
                                           drawn in batches of 16
  β-VAE (Higgins) score                    batches of 64 pairs; 10,000 train,
                                           5,000 eval points
  FactorVAE score                          batches of 64; 10,000 train, 5,000
                                           eval; 10,000 for the variances

Each metric draws from its own `np.random.RandomState(config.eval.seed)`, as
disentanglement_lib's evaluate.py does. MIG, modularity, DCI and SAP therefore
draw the same points; they are drawn and encoded once and shared, which gives
the numbers of four separate runs.

Writes DIR/eval/metrics_<step>.json, TensorBoard scalars `eval/<metric>/<key>`
and two figures: the mutual-information matrix (codes × factors, codes
ordered by KL) and the per-factor MIG gaps. The representation is the
posterior mean (`config.eval.representation='mean'`) or one posterior sample
(`'sampled'`), as disentanglement_lib's `mean`/`sampled` representations.
"""

import dataclasses
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bvae_jax import checkpointing
from bvae_jax import devices
from bvae_jax import experiment_config
from bvae_jax import figures
from bvae_jax import loop
from bvae_jax import metric_logging
from bvae_jax import step as step_lib
from bvae_jax.datasets import registry
from bvae_jax.objectives import gaussians
from bvae_jax.metrics import beta_vae
from bvae_jax.metrics import dci
from bvae_jax.metrics import factor_vae
from bvae_jax.metrics import mig
from bvae_jax.metrics import modularity_explicitness
from bvae_jax.metrics import mutual_info
from bvae_jax.metrics import sampling
from bvae_jax.metrics import sap

# Points per draw of the code-based metrics (disentanglement_lib's batch_size
# for MIG, modularity, DCI and SAP): it fixes the order of the random draws.
_DRAW_BATCH = 16


class NoCheckpointError(FileNotFoundError):
  """The workdir has no checkpoint, or not the requested step."""


def make_representation_fn(model, params, *, mesh=None, encode_batch_size=2048,
                           sampled=False, seed=0) -> Callable[[np.ndarray],
                                                                np.ndarray]:
  """Returns observations (n, H, W, C) -> codes (n, latent_dim), numpy.

  The encoder runs jitted over the mesh's devices on chunks of at most
  `encode_batch_size`; a short chunk is padded to the next power of two, so
  only a few shapes are ever compiled.

  Args:
    model: the VAE (its conv_impl may differ from training's: the parameter
      tree is the same).
    params: its parameters.
    mesh: device mesh; None: all local devices.
    encode_batch_size: largest chunk per encoder call.
    sampled: return a posterior sample instead of the mean.
    seed: seeds the posterior samples (call i uses fold_in(key(seed), i)).
  """
  mesh = mesh or devices.create_mesh()
  num_devices = mesh.devices.size
  params = jax.device_put(params, devices.replicated(mesh))
  batch_sharding = devices.batch_sharded(mesh)

  @jax.jit
  def encode(params, images, key):
    mean, log_var = model.apply({'params': params}, images, method=model.encode)
    if not sampled:
      return mean
    noise = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_var) * noise

  calls = [0]
  base_key = jax.random.key(seed)

  def representation_fn(observations):
    observations = np.asarray(observations, np.float32)
    codes = []
    for start in range(0, len(observations), encode_batch_size):
      chunk = observations[start:start + encode_batch_size]
      padded = max(num_devices, 1 << (len(chunk) - 1).bit_length())
      padded = -(-padded // num_devices) * num_devices
      if padded != len(chunk):
        chunk = np.concatenate(
            [chunk, np.zeros((padded - len(chunk),) + chunk.shape[1:],
                             chunk.dtype)])
      key = jax.random.fold_in(base_key, calls[0])
      calls[0] += 1
      out = encode(params, jax.device_put(chunk, batch_sharding), key)
      codes.append(np.asarray(out)[:min(encode_batch_size,
                                        len(observations) - start)])
    return np.concatenate(codes) if codes else np.zeros((0, 0), np.float32)

  return representation_fn


def checkpoint_step(workdir: str, step: int | None = None) -> int:
  """The checkpoint step to restore: `step`, or the latest.

  Raises:
    NoCheckpointError: no checkpoint in workdir, or none at `step`; the
      message lists what is there.
  """
  steps = checkpointing.all_steps(workdir)
  directory = checkpointing.checkpoint_dir(workdir)
  if not steps:
    there = sorted(os.listdir(workdir)) if os.path.isdir(workdir) else None
    raise NoCheckpointError(
        f'No checkpoint in {directory}; '
        + (f'{workdir} does not exist' if there is None
           else f'{workdir} holds: {there or "nothing"}')
        + '. Train first: python -m bvae_jax.main --config=... '
        f'--workdir={workdir}')
  if step is None:
    return steps[-1]
  if step not in steps:
    raise NoCheckpointError(
        f'No checkpoint for step {step} in {directory}; available steps: '
        f'{steps}')
  return step


def restore_params(config: ml_collections.ConfigDict, workdir: str,
                   step: int | None = None) -> tuple[Any, int, dict]:
  """Restores the parameters of a training run.

  Args:
    config: the run's config (builds the model to restore into).
    workdir: the run's workdir.
    step: the checkpoint step; None: the latest.

  Returns:
    (params, step, the config dict saved with the checkpoint).

  Raises:
    NoCheckpointError: no checkpoint in workdir, or none at `step`; the
      message lists what is there.
    checkpointing.CheckpointMismatchError: the checkpoint is of another
      architecture (names the differences).
  """
  step = checkpoint_step(workdir, step)
  mesh = devices.create_mesh()
  model = step_lib.create_model(config)
  abstract_state = step_lib.abstract_train_state(config, model, mesh)
  manager = checkpointing.create_manager(workdir, config, read_only=True)
  state, stored_config = checkpointing.restore(manager, step, abstract_state)
  return state.params, step, stored_config


# Every metric of the suite, in the order computed (config.eval.metrics).
METRIC_NAMES = experiment_config.EVAL_METRICS


def code_metrics(codes_train, factors_train, codes_test, factors_test,
                 num_bins=20, names=METRIC_NAMES
                 ) -> dict[str, dict[str, float]]:
  """MIG, modularity/explicitness, DCI and SAP (those in `names`) on drawn codes."""
  results = {}
  timings = {}
  for name, compute in (
      ('mig', lambda: mig.mig(codes_train, factors_train, num_bins=num_bins)),
      ('modularity_explicitness', lambda: (
          modularity_explicitness.modularity_explicitness(
              codes_train, factors_train, codes_test, factors_test,
              num_bins=num_bins))),
      ('dci', lambda: dci.dci(codes_train, factors_train, codes_test,
                              factors_test)),
      ('sap', lambda: sap.sap(codes_train, factors_train, codes_test,
                              factors_test)),
  ):
    if name not in names:
      continue
    start = time.perf_counter()
    results[name] = {k: float(v) for k, v in compute().items()}
    timings[name] = time.perf_counter() - start
    logging.info('Metric %s: %s (%.1f s).', name, results[name], timings[name])
  return results, timings


def compute_suite(ground_truth, representation_fn, eval_config
                  ) -> tuple[dict[str, dict[str, float]], dict[str, float],
                             dict[str, np.ndarray]]:
  """Computes every metric.

  Args:
    ground_truth: a GroundTruthData.
    representation_fn: observations -> codes.
    eval_config: ConfigDict with seed, num_train, num_test, batch_size,
      num_variance_estimate, num_bins and metrics (the names to compute).

  Returns:
    (metrics by name, seconds by name, {'codes_train', 'factors_train'}).
  """
  c = eval_config
  timings = {}
  representation_fn = _reporting_progress(
      representation_fn, total_images=suite_image_count(c))
  logging.info('Drawing and encoding %d + %d points for MIG, modularity, DCI '
               'and SAP.', c.num_train, c.num_test)
  start = time.perf_counter()
  random_state = np.random.RandomState(c.seed)
  codes_train, factors_train = sampling.generate_batch_factor_code(
      ground_truth, representation_fn, c.num_train, random_state, _DRAW_BATCH)
  codes_test, factors_test = sampling.generate_batch_factor_code(
      ground_truth, representation_fn, c.num_test, random_state, _DRAW_BATCH)
  timings['draw_and_encode_codes'] = time.perf_counter() - start
  names = tuple(c.metrics)
  metrics, code_timings = code_metrics(codes_train, factors_train, codes_test,
                                       factors_test, c.num_bins, names)
  timings.update(code_timings)
  draws = {'codes_train': codes_train, 'factors_train': factors_train}
  if 'beta_vae' not in names and 'factor_vae' not in names:
    return metrics, timings, draws

  if 'beta_vae' in names:
    logging.info('β-VAE score: encoding %d images.',
                 2 * c.batch_size * (c.num_train + c.num_test))
    start = time.perf_counter()
    metrics['beta_vae'] = {k: float(v) for k, v in beta_vae.beta_vae_score(
        ground_truth, representation_fn, np.random.RandomState(c.seed),
        batch_size=c.batch_size, num_train=c.num_train,
        num_eval=c.num_test).items()}
    timings['beta_vae'] = time.perf_counter() - start
    logging.info('Metric beta_vae: %s (%.1f s).', metrics['beta_vae'],
                 timings['beta_vae'])
  if 'factor_vae' not in names:
    return metrics, timings, draws
  logging.info('FactorVAE score: encoding %d images.',
               c.num_variance_estimate + c.batch_size * (c.num_train +
                                                         c.num_test))
  start = time.perf_counter()
  metrics['factor_vae'] = {k: float(v) for k, v in factor_vae.factor_vae_score(
      ground_truth, representation_fn, np.random.RandomState(c.seed),
      batch_size=c.batch_size, num_train=c.num_train, num_eval=c.num_test,
      num_variance_estimate=c.num_variance_estimate).items()}
  timings['factor_vae'] = time.perf_counter() - start
  logging.info('Metric factor_vae: %s (%.1f s).', metrics['factor_vae'],
               timings['factor_vae'])
  return metrics, timings, draws


def suite_image_count(eval_config) -> int:
  """Observations the suite encodes (for progress and benchmarks)."""
  c = eval_config
  points = c.num_train + c.num_test
  names = tuple(c.get('metrics', METRIC_NAMES))
  return (points  # MIG, modularity, DCI, SAP (shared).
          + ('beta_vae' in names) * 2 * c.batch_size * points  # β-VAE: pairs.
          + ('factor_vae' in names) * (c.num_variance_estimate +
                                       c.batch_size * points))  # FactorVAE.


def _reporting_progress(representation_fn, total_images, every_seconds=30.0):
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


@dataclasses.dataclass
class EvaluationSetup:
  """What evaluating one set of parameters needs (see prepare_evaluation)."""
  config: ml_collections.ConfigDict  # dataset_source resolved as trained.
  dataset: registry.Dataset
  model: Any  # The VAE with config.eval.conv_impl.
  params: Any
  step: int
  representation_fn: Callable[[np.ndarray], np.ndarray]


def prepare_evaluation(config: ml_collections.ConfigDict, workdir: str,
                       step: int | None = None,
                       params=None) -> EvaluationSetup:
  """Restores (unless `params` are given) and opens the data and encoder.

  Raises:
    As restore_params, and ValueError on a bad config value.
  """
  experiment_config.validate_config(config)
  stored_config = {}
  if params is None:
    params, step, stored_config = restore_params(config, workdir, step)
  config = loop.data_source_as_trained(config, stored_config)
  c = config.eval
  model = step_lib.create_model(config).clone(conv_impl=c.conv_impl)
  return EvaluationSetup(
      config=config, dataset=registry.open_dataset(config), model=model,
      params=params, step=step,
      representation_fn=make_representation_fn(
          model, params, encode_batch_size=c.encode_batch_size,
          sampled=c.representation == 'sampled', seed=c.seed))


def evaluate(config: ml_collections.ConfigDict, workdir: str,
             step: int | None = None, params=None) -> dict[str, Any]:
  """Evaluates a checkpoint of `workdir` (or `params`) and writes the results.

  Args:
    config: the run's config.
    workdir: the run's workdir; results go to workdir/eval.
    step: checkpoint step; None: the latest. With `params`, the step to label
      the results with.
    params: evaluate these parameters instead of restoring (used by training's
      periodic evaluation).

  Returns:
    The dict written to workdir/eval/metrics_<step>.json.

  Raises:
    NoCheckpointError, checkpointing.CheckpointMismatchError: see
      restore_params.
    ground_truth.NoGroundTruthError: the data set has no known factors.
  """
  setup = prepare_evaluation(config, workdir, step, params)
  dataset, eval_model, params, step = (setup.dataset, setup.model,
                                       setup.params, setup.step)
  ground_truth = dataset.ground_truth()
  c = setup.config.eval
  representation_fn = setup.representation_fn
  start = time.perf_counter()
  metrics, timings, draws = compute_suite(ground_truth, representation_fn, c)
  total = time.perf_counter() - start
  kl = _mean_kl_per_latent(eval_model, params, ground_truth, c.seed)
  result = {
      'step': int(step), 'dataset': dataset.describe(),
      'representation': c.representation, 'seed': c.seed,
      'sample_sizes': {'num_train': c.num_train, 'num_test': c.num_test,
                       'batch_size': c.batch_size,
                       'num_variance_estimate': c.num_variance_estimate},
      'metrics': metrics, 'kl_per_latent': kl.tolist(),
      'seconds': {**{k: round(v, 2) for k, v in timings.items()},
                  'total': round(total, 2)},
  }
  _write_outputs(workdir, result, draws, kl, ground_truth, c.num_bins)
  logging.info('Evaluated step %d in %.1f s: %s', step, total, ', '.join(
      f'{name}/{key}={value:.3f}' for name, values in metrics.items()
      for key, value in values.items()))
  return result


def _mean_kl_per_latent(model, params, ground_truth, seed, num=2048):
  """Average KL of each latent over `num` random observations."""
  observations = ground_truth.sample_observations(
      num, np.random.RandomState(seed))
  mean, log_var = jax.jit(
      lambda p, x: model.apply({'params': p}, x, method=model.encode))(
          params, observations)
  return np.asarray(gaussians.kl_per_latent(mean, log_var).mean(axis=0))


def _write_outputs(workdir, result, draws, kl, ground_truth, num_bins):
  step = result['step']
  eval_dir = os.path.join(workdir, 'eval')
  os.makedirs(eval_dir, exist_ok=True)
  path = os.path.join(eval_dir, f'metrics_{step}.json')
  loop.write_json(path, result)  # Atomic: never a half-written result.
  writer = metric_logging.MetricWriter(workdir)
  writer.write_scalars(step, {
      f'eval/{name}/{key}': value
      for name, values in result['metrics'].items()
      for key, value in values.items()})
  writer.flush()
  writer.close()
  codes = draws['codes_train']
  factors = draws['factors_train']
  order = figures.latent_order_by_kl(kl)
  discrete = mutual_info.histogram_discretize(codes, num_bins)
  mutual_information = mutual_info.discrete_mutual_info(discrete, factors)
  figures.save_mutual_information_figure(
      os.path.join(eval_dir, f'mutual_information_{step}.png'),
      mutual_information[order], order, kl[order], ground_truth.factor_names,
      step)
  if 'mig' in result['metrics']:
    figures.save_mig_figure(
        os.path.join(eval_dir, f'mig_{step}.png'),
        mig.mig_per_factor(codes, factors, num_bins),
        ground_truth.factor_names, result['metrics']['mig']['discrete_mig'],
        step)
  logging.info('Wrote %s and figures in %s.', path, eval_dir)
