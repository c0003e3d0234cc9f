r"""Evaluation of trained models: the disentanglement metric suite from Orbax.

  python -m bvae_jax.main --config=configs/capacity.py --workdir=DIR --mode=evaluate [--step=N]

restores the checkpoint of DIR (the latest, or step N), builds the encoder's
representation function, runs the metric suite of `bvae_jax.metrics.suite`
on the data set's ground truth and writes the results. The suite uses the
sample sizes of disentanglement_lib's evaluation (Locatello et al. 2019):

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
and two figures, as PNGs in DIR/eval and as TensorBoard images
(`eval_figures/mutual_information`, `eval_figures/mig_per_factor`): the
mutual-information matrix (codes × factors, codes ordered by KL) and the
per-factor MIG gaps. The representation is the
posterior mean (`config.eval.representation='mean'`) or one posterior sample
(`'sampled'`), as disentanglement_lib's `mean`/`sampled` representations.

Training's periodic evaluation and a sweep's final one pass the data set they
already hold, so its ground truth is built once, not at every evaluation.
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

from bvae_jax.core import checkpointing
from bvae_jax.core import devices
from bvae_jax.core import metric_logging
from bvae_jax.core import run_records
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import registry
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax import experiment_config
from bvae_jax.figures import drawing
from bvae_jax.metrics import mig
from bvae_jax.metrics import mutual_info
from bvae_jax.metrics import suite
from bvae_jax.objectives import elbo
from bvae_jax.objectives import gaussians


# Every encoder call gets at least this many rows per device (zero-padded).
# XLA:CPU multiplies matrices of fewer rows with other kernels, whose float
# rounding differs (codes up to ~7e-8 apart at 32 rows per device, bitwise
# equal from 64 on; tests/test_metric_code_table.py). With the padding, an
# image's code does not depend on how many images share its call, so the
# metric suite's code table (metrics/code_table.py) and drawing images give
# the same numbers.
MIN_ROWS_PER_DEVICE = 64


class NoCheckpointError(FileNotFoundError):
  """The workdir has no checkpoint, or not the requested step."""


def make_representation_fn(model, params, *, mesh=None, encode_batch_size=2048,
                           sampled=False, seed=0) -> Callable[[np.ndarray],
                                                                np.ndarray]:
  """Returns observations (n, H, W, C) -> codes (n, latent_dim), numpy.

  The encoder runs jitted over the mesh's devices on chunks of at most
  `encode_batch_size`; a short chunk is padded to the next power of two (at
  least `MIN_ROWS_PER_DEVICE` per device), so only a few shapes are ever
  compiled and a code does not depend on the size of its call.

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
      padded = max(num_devices * MIN_ROWS_PER_DEVICE,
                   1 << (len(chunk) - 1).bit_length())
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
  run_records.check_workdir(workdir)
  steps = checkpointing.all_steps(workdir)
  directory = checkpointing.checkpoint_dir(workdir)
  if not steps:
    there = (sorted(name for name in os.listdir(workdir)
                    if name != run_records.LOCK_FILE)
             if os.path.isdir(workdir) else None)
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
  config = experiment_config.resolve(config)
  mesh = devices.create_mesh()
  model = step_lib.create_model(config)
  abstract_state = step_lib.abstract_train_state(model, mesh,
                                                 config.objective)
  manager = checkpointing.create_manager(workdir, read_only=True)
  state, stored_config = checkpointing.restore_step(manager, step,
                                                   abstract_state)
  return state.params, step, stored_config


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
                       step: int | None = None, params=None,
                       dataset: registry.Dataset | None = None
                       ) -> EvaluationSetup:
  """Restores (unless `params` are given) and opens the data and encoder.

  Args:
    config: the run's config.
    workdir: the run's workdir.
    step: checkpoint step; None: the latest. With `params`, the step to label
      the results with.
    params: use these parameters instead of restoring.
    dataset: the data set of `config`, already open (training's); None: open
      it here. An open data set keeps its ground truth, so passing it skips
      rebuilding the ground truth.

  Raises:
    As restore_params, and ValueError on a bad config value.
  """
  config = experiment_config.resolve(config)
  stored_config = {}
  if params is None:
    params, step, stored_config = restore_params(config, workdir, step)
  config = run_records.data_source_as_trained(config, stored_config)
  c = config.eval
  model = step_lib.create_model(config).clone(conv_impl=c.conv_impl)
  return EvaluationSetup(
      config=config, dataset=dataset or registry.open_dataset(
          config.dataset, config.dataset_source, config.data_dir),
      model=model, params=params, step=step,
      representation_fn=make_representation_fn(
          model, params, encode_batch_size=c.encode_batch_size,
          sampled=c.representation == 'sampled', seed=c.seed))


def evaluate(config: ml_collections.ConfigDict, workdir: str,
             step: int | None = None, params=None,
             dataset: registry.Dataset | None = None) -> dict[str, Any]:
  """Evaluates a checkpoint of `workdir` (or `params`) and writes the results.

  Restores the parameters, builds the representation function, runs the
  metric suite (`metrics.suite.compute_suite`) and writes the outputs.

  Args:
    config: the run's config.
    workdir: the run's workdir; results go to workdir/eval.
    step: checkpoint step; None: the latest. With `params`, the step to label
      the results with.
    params: evaluate these parameters instead of restoring (used by training's
      periodic evaluation and by sweeps).
    dataset: the data set of `config`, already open; None: open it here.
      Training and sweeps pass theirs, so that its ground truth is built
      once, not at every evaluation.

  Returns:
    The dict written to workdir/eval/metrics_<step>.json.

  Raises:
    NoCheckpointError, checkpointing.CheckpointMismatchError: see
      restore_params.
    ground_truth.NoGroundTruthError: the data set has no known factors.
    run_records.WorkdirInUseError: another run is writing to `workdir`.
  """
  config = experiment_config.resolve(config)  # Before anything is written.
  with run_records.workdir_lock(workdir, enabled=jax.process_index() == 0,
                                create=params is not None):
    return _evaluate(config, workdir, step, params, dataset)


def _evaluate(config, workdir, step, params, dataset) -> dict[str, Any]:
  """evaluate, with the workdir locked."""
  setup = prepare_evaluation(config, workdir, step, params, dataset)
  dataset, eval_model, params, step = (setup.dataset, setup.model,
                                       setup.params, setup.step)
  ground_truth = dataset.ground_truth()
  c = setup.config.eval
  start = time.perf_counter()
  metrics, timings, draws = suite.compute_suite(
      ground_truth, setup.representation_fn, c)
  total = time.perf_counter() - start
  kl, kl_input_dependent, information = _mean_kl_per_latent(
      eval_model, params, ground_truth, c.seed)
  result = {
      'step': int(step), 'dataset': dataset.describe(),
      'representation': c.representation, 'seed': c.seed,
      'sample_sizes': {'num_train': c.num_train, 'num_test': c.num_test,
                       'batch_size': c.batch_size,
                       'num_variance_estimate': c.num_variance_estimate},
      'metrics': metrics, 'kl_per_latent': kl.tolist(),
      'active_latents': np.flatnonzero(
          ~capacity_diagnostics.inactive_latents(kl)).tolist(),
      'active_kl_threshold_nats': capacity_diagnostics.ACTIVE_KL_NATS,
      # Two splits of each latent's KL (objectives/elbo.py): ½ Var_x[μ], and
      # the Gaussian bound on I(x; z_l); latents with enough of the latter
      # are informative.
      'kl_input_dependent_per_latent': kl_input_dependent.tolist(),
      'information_per_latent': information.tolist(),
      'informative_latents': np.flatnonzero(
          capacity_diagnostics.informative_latents(information)).tolist(),
      'informative_kl_threshold_nats': capacity_diagnostics.INFORMATIVE_KL_NATS,
      'seconds': {**{k: round(v, 2) for k, v in timings.items()},
                  'total': round(total, 2)},
  }
  _write_outputs(workdir, result, draws, kl, ground_truth, c.num_bins)
  logging.info('Evaluated step %d in %.1f s: %s', step, total, ', '.join(
      f'{name}/{key}={value:.3f}' for name, values in metrics.items()
      for key, value in values.items()))
  return result


def _mean_kl_per_latent(model, params, ground_truth, seed, num=2048):
  """Average KL of each latent over `num` random observations, its part
  ½ Var[μ] and its information bound (objectives/elbo.py), each (L,)."""
  observations = ground_truth.sample_observations(
      num, np.random.RandomState(seed))
  mean, log_var = step_lib.jitted_encode(model)(params, observations)
  return (np.asarray(gaussians.kl_per_latent(mean, log_var).mean(axis=0)),
          np.asarray(elbo.input_dependent_kl_per_latent(mean)),
          np.asarray(elbo.information_bound_per_latent(mean, log_var)))


def metrics_path(workdir: str, step: int) -> str:
  """workdir/eval/metrics_<step>.json, the results of evaluating `step`."""
  return os.path.join(workdir, 'eval', f'metrics_{step}.json')


def _write_outputs(workdir, result, draws, kl, ground_truth, num_bins):
  step = result['step']
  eval_dir = os.path.join(workdir, 'eval')
  os.makedirs(eval_dir, exist_ok=True)
  path = metrics_path(workdir, step)
  run_records.write_json(path, result)  # Atomic: never a half-written result.
  codes = draws['codes_train']
  factors = draws['factors_train']
  order = drawing.latent_order_by_kl(kl)
  discrete = mutual_info.histogram_discretize(codes, num_bins)
  mutual_information = mutual_info.discrete_mutual_info(discrete, factors)
  images = {'eval_figures/mutual_information':
                os.path.join(eval_dir, f'mutual_information_{step}.png')}
  drawing.save_mutual_information_figure(
      images['eval_figures/mutual_information'],
      mutual_information[order], order, kl[order], ground_truth.factor_names,
      step, inactive=capacity_diagnostics.inactive_latents(kl[order]))
  if 'mig' in result['metrics']:
    images['eval_figures/mig_per_factor'] = os.path.join(eval_dir,
                                                         f'mig_{step}.png')
    drawing.save_mig_figure(
        images['eval_figures/mig_per_factor'],
        mig.mig_per_factor(codes, factors, num_bins),
        ground_truth.factor_names, result['metrics']['mig']['discrete_mig'],
        step)
  writer = metric_logging.MetricWriter(workdir)
  writer.write_scalars(step, {
      f'eval/{name}/{key}': value
      for name, values in result['metrics'].items()
      for key, value in values.items()})
  writer.write_image_files(step, images)  # The PNGs, as TensorBoard shows them.
  writer.close()
  logging.info('Wrote %s and figures in %s.', path, eval_dir)
