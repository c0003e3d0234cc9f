"""Training of β-VAE and controlled-capacity β-VAE: state, step and loop.

The train step is one pure, jitted function `(state, images, noise_key) ->
(state, metrics)`. Its randomness is `fold_in(noise_key, state.step)`, and the
input pipeline's batch at step s depends only on (seed, s), so a run is
deterministic and a resumed run is bit-identical to an uninterrupted one.
The step runs data-parallel over a 1-D device mesh: the batch is split along
the mesh's `data` axis, the state is replicated, and XLA inserts the gradient
all-reduce.
"""

import functools
import json
import os
from typing import Any, Callable, Mapping

from absl import logging
from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bvae_jax import checkpointing
from bvae_jax import devices
from bvae_jax import experiment_config
from bvae_jax import figures
from bvae_jax import input_pipeline
from bvae_jax import metric_logging
from bvae_jax import models
from bvae_jax import objectives
from bvae_jax import run_ahead
from bvae_jax.datasets import registry

# Config fields that choose the computation: static arguments of the step.
STATIC_OBJECTIVE_FIELDS = ('objective', 'likelihood')
# Numeric config fields the step reads. They enter the step as traced float32
# values, not constants, so one compiled step serves every value and a sweep
# can vmap over them (bvae_jax/sweep.py).
HYPERPARAMETERS = ('beta', 'gamma', 'capacity_start', 'capacity_max',
                   'capacity_anneal_steps', 'gaussian_stddev', 'learning_rate')


class TrainState(struct.PyTreeNode):
  """Everything that changes during training; pure data, so vmap/shard-able.

  Attributes:
    step: number of updates applied so far (int32 scalar).
    params: the VAE's parameters.
    opt_state: Adam's state.
  """
  step: jax.Array
  params: Any
  opt_state: Any


def rng_streams(seed: int) -> tuple[jax.Array, jax.Array]:
  """Independent keys for parameter initialisation and reparameterisation noise."""
  root = jax.random.key(seed)
  return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def create_model(config: ml_collections.ConfigDict) -> models.VAE:
  return models.VAE(latent_dim=config.latent_dim,
                    num_channels=config.num_channels,
                    conv_impl=config.conv_impl)


def create_optimizer(learning_rate: float | jax.Array
                     ) -> optax.GradientTransformation:
  """Adam; its state does not depend on `learning_rate`, which may be traced."""
  return optax.adam(learning_rate)


def hyperparameters(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The step's numeric hyperparameters (HYPERPARAMETERS) as float32 scalars."""
  return {name: np.float32(config[name]) for name in HYPERPARAMETERS}


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  return (64, 64, config.num_channels)


def create_train_state(config: ml_collections.ConfigDict, model: models.VAE,
                       init_key: jax.Array) -> TrainState:
  """A fresh state at step 0 (pure: jit-, vmap- and eval_shape-able)."""
  dummy = jnp.zeros((1,) + image_shape(config), jnp.float32)
  params_key, noise_key = jax.random.split(init_key)
  params = model.init(params_key, dummy, noise_key)['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=create_optimizer(config.learning_rate).init(params))


def train_step(state: TrainState, images: jax.Array, noise_key: jax.Array,
               hparams: Mapping[str, jax.Array], *, model: models.VAE,
               static_objective: Mapping[str, str]
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam update on one batch.

  Args:
    state: the current state.
    images: (N, 64, 64, C) float32 in [0, 1].
    noise_key: the run's noise key; this step's noise uses
      `fold_in(noise_key, state.step)`.
    hparams: the HYPERPARAMETERS as float32 scalars (traced).
    model: the VAE.
    static_objective: the STATIC_OBJECTIVE_FIELDS of the config.

  Returns:
    The new state and a dict of batch metrics (scalars, and `kl_per_latent` of
    shape (L,)), including `grad_norm` for the non-finite check.
  """
  step_key = jax.random.fold_in(noise_key, state.step)
  objective_config = {**static_objective, **hparams}

  def loss_fn(params):
    decoder_output, mean, log_var = model.apply({'params': params}, images,
                                                step_key)
    return objectives.vae_objective(decoder_output, images, mean, log_var,
                                    state.step, objective_config)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  optimizer = create_optimizer(hparams['learning_rate'])
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics['grad_norm'] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1, params=params,
                       opt_state=opt_state), metrics


def static_objective_fields(config: ml_collections.ConfigDict) -> dict[str, str]:
  return {field: config[field] for field in STATIC_OBJECTIVE_FIELDS}


def make_train_step(config: ml_collections.ConfigDict, model: models.VAE,
                    mesh: jax.sharding.Mesh) -> Callable:
  """`train_step` jitted for `mesh`: state replicated and donated, batch split.

  Returns:
    `step_fn(state, images, noise_key) -> (state, metrics)` with the config's
    hyperparameters bound.
  """
  step_fn = functools.partial(
      train_step, model=model,
      static_objective=static_objective_fields(config))
  replicated = devices.replicated(mesh)
  jitted = jax.jit(step_fn,
                   in_shardings=(replicated, devices.batch_sharded(mesh),
                                 replicated, replicated),
                   out_shardings=(replicated, replicated),
                   donate_argnums=0)
  hparams = jax.device_put(hyperparameters(config), replicated)
  return lambda state, images, noise_key: jitted(state, images, noise_key,
                                                 hparams)


def abstract_train_state(config, model, mesh) -> TrainState:
  """Shapes, dtypes and shardings of the state, without computing it."""
  init_key, _ = rng_streams(config.seed)
  shapes = jax.eval_shape(
      lambda: create_train_state(config, model, init_key))
  replicated = devices.replicated(mesh)
  return jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                        sharding=replicated), shapes)


def initial_train_state(config, model, mesh) -> TrainState:
  init_key, _ = rng_streams(config.seed)
  return jax.jit(functools.partial(create_train_state, config, model),
                 out_shardings=devices.replicated(mesh))(init_key)


def first_nonfinite(metric_history: list[dict[str, np.ndarray]],
                    first_step: int) -> int | None:
  """The step (1-based update count) of the first non-finite loss or gradient."""
  for offset, metrics in enumerate(metric_history):
    if not (np.isfinite(metrics['loss']) and np.isfinite(metrics['grad_norm'])):
      return first_step + offset
  return None


def mean_metrics(metric_history: list[dict[str, np.ndarray]]
                 ) -> dict[str, np.ndarray]:
  """Averages each metric over the steps of a logging interval."""
  return {name: np.mean([m[name] for m in metric_history], axis=0)
          for name in metric_history[0]}


def decoder_mean(decoder_output: jax.Array, likelihood: str) -> jax.Array:
  """The mean image of the decoder distribution, in [0, 1]."""
  if likelihood == 'bernoulli':
    return jax.nn.sigmoid(decoder_output)
  return jnp.clip(decoder_output, 0.0, 1.0)


class FigureWriter:
  """Draws reconstructions and traversals for fixed images during training."""

  def __init__(self, config: ml_collections.ConfigDict, model: models.VAE,
               workdir: str, images: np.ndarray):
    self._config = config
    self._workdir = workdir
    self._images = images
    likelihood = config.likelihood
    self._encode = jax.jit(lambda params, x: model.apply(
        {'params': params}, x, method=models.VAE.encode))
    self._decode_mean = jax.jit(lambda params, z: decoder_mean(model.apply(
        {'params': params}, z, method=models.VAE.decode), likelihood))

  def set_workdir(self, workdir: str) -> None:
    """Writes later figures to workdir/figures (sweeps: one per member)."""
    self._workdir = workdir

  def write(self, step: int, params: Any, kl_per_latent: np.ndarray,
            writer: metric_logging.MetricWriter) -> list[str]:
    """Writes the step's PNGs into workdir/figures and TensorBoard; returns paths."""
    config = self._config
    params = jax.device_get(params)
    images = self._images
    means, _ = self._encode(params, images)
    reconstructions = np.asarray(self._decode_mean(params, means))
    num_columns = config.traversal_steps
    order = figures.latent_order_by_kl(kl_per_latent)
    values = np.linspace(-config.traversal_range, config.traversal_range,
                         num_columns, dtype=np.float32)
    codes = figures.traversal_codes(np.asarray(means[0]), order, values)
    traversals = np.asarray(self._decode_mean(
        params, codes.reshape(-1, codes.shape[-1]))).reshape(
            codes.shape[:2] + images.shape[1:])
    figure_dir = os.path.join(self._workdir, 'figures')
    reconstruction_path = os.path.join(figure_dir,
                                       f'reconstructions_{step:08d}.png')
    traversal_path = os.path.join(figure_dir, f'traversal_{step:08d}.png')
    num_recon = config.num_figure_images
    figures.save_reconstruction_figure(reconstruction_path, images[:num_recon],
                                       reconstructions[:num_recon], step)
    header = np.resize(np.arange(len(images)), num_columns)
    figures.save_traversal_figure(traversal_path, images[header],
                                  reconstructions[header], traversals, order,
                                  kl_per_latent, config.traversal_range, step)
    writer.write_images(step, {
        'traversal': figures.mosaic(np.concatenate(
            [images[header][None], reconstructions[header][None], traversals])),
    })
    return [reconstruction_path, traversal_path]


def _write_config_json(workdir: str, config: ml_collections.ConfigDict,
                       start_step: int) -> None:
  """Records the config of this (possibly resumed) run without overwriting."""
  name = 'config.json' if start_step == 0 else f'config_resumed_{start_step}.json'
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    with open(path, 'w') as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True)


def open_training_data(config: ml_collections.ConfigDict
                       ) -> tuple[registry.Dataset, ml_collections.ConfigDict]:
  """Opens the configured data set; returns it and the config to save.

  The saved config has `dataset_source` resolved ('real' or 'procedural'), so
  evaluating or resuming the run reads the same records.

  Raises:
    ValueError: if config.num_channels does not match the data set's images.
  """
  dataset = registry.open_dataset(config)
  channels = dataset.observation_shape[-1]
  if config.num_channels != channels:
    raise ValueError(
        f'config.num_channels={config.num_channels} but data set '
        f'{config.dataset!r} has {channels}-channel images; use '
        f'--config=configs/<file>.py:dataset={config.dataset}, which sets it, '
        f'or --config.num_channels={channels}')
  resolved = config.copy_and_resolve_references()
  resolved.dataset_source = (
      'procedural' if dataset.source == 'procedural' else 'real')
  return dataset, resolved


def check_same_data_source(stored_config: Mapping[str, Any],
                            config: ml_collections.ConfigDict,
                            workdir: str) -> None:
  """Refuses to resume a run on records from another source."""
  stored = stored_config.get('dataset_source')
  if stored in ('real', 'procedural') and stored != config.dataset_source:
    raise ValueError(
        f'The checkpoint in {checkpointing.checkpoint_dir(workdir)} was '
        f'trained on {stored} {config.dataset} data, but here the data set '
        f'resolves to {config.dataset_source} data. Make the {stored} data '
        f'available (docs/datasets.md), or use a fresh --workdir.')


def run_periodic_evaluation(config: ml_collections.ConfigDict, workdir: str,
                            step: int, params: Any,
                            dataset: registry.Dataset) -> None:
  """The metric suite on the current parameters (config.eval_every_steps)."""
  if dataset.make_ground_truth is None:
    logging.warning('No evaluation: data set %s has no ground truth.',
                    config.dataset)
    return
  if jax.process_count() > 1:
    logging.warning('Periodic evaluation runs in single-process jobs only; '
                    'evaluate step %d with --mode=evaluate.', step)
    return
  # Imported here: evaluate builds models with this module's functions.
  from bvae_jax import evaluate  # pylint: disable=g-import-not-at-top
  evaluate.evaluate(config, workdir, step, params=params)


def _write_dataset_json(workdir: str, dataset: registry.Dataset) -> None:
  with open(os.path.join(workdir, 'dataset.json'), 'w') as f:
    json.dump(dataset.describe(), f, indent=2, sort_keys=True)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> TrainState:
  """Trains (or resumes) the configured model, logging to `workdir`.

  Writes to `workdir`: `checkpoints/` (Orbax, with the config), TensorBoard
  event files, `figures/` (reconstruction and traversal PNGs), `config.json`
  and `dataset.json` (the data set's source and size).

  Args:
    config: a training config (see configs/).
    workdir: the run's directory; an existing checkpoint there is resumed.

  Returns:
    The final training state.

  Raises:
    ValueError: on a bad config value (naming the field) or a checkpoint of a
      different architecture in `workdir` (naming the file), before anything
      in `workdir` is written.
    FloatingPointError: on a non-finite loss or gradient, naming the step; the
      last good checkpoint is kept.
  """
  experiment_config.validate_config(config)
  dataset, config = open_training_data(config)
  mesh = devices.create_mesh()
  devices.check_batch_divisible(config.batch_size, jax.device_count())
  is_chief = jax.process_index() == 0
  logging.info('Devices: %d (%s), processes: %d, mesh %s.', jax.device_count(),
               jax.devices()[0].device_kind, jax.process_count(),
               dict(mesh.shape))

  model = create_model(config)
  abstract_state = abstract_train_state(config, model, mesh)
  manager = checkpointing.create_manager(workdir, config)
  latest = manager.latest_step()
  if latest is not None:
    state, stored_config = checkpointing.restore(manager, latest,
                                                 abstract_state)
    check_same_data_source(stored_config, config, workdir)
    logging.info('Resuming from step %d (checkpoint in %s).', latest,
                 checkpointing.checkpoint_dir(workdir))
  else:
    state = initial_train_state(config, model, mesh)
  start_step = int(jax.device_get(state.step))

  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    _write_config_json(workdir, config, start_step)
    _write_dataset_json(workdir, dataset)
  writer = metric_logging.MetricWriter(workdir, just_logging=not is_chief)
  step_fn = make_train_step(config, model, mesh)
  _, noise_key = rng_streams(config.seed)
  batch_sharding = devices.batch_sharded(mesh)
  batches = input_pipeline.create_train_iterator(
      config, start_step=start_step, dataset=dataset)
  figure_writer = FigureWriter(
      config, model, workdir,
      input_pipeline.fixed_images(
          config, max(config.num_figure_images, config.traversal_steps),
          dataset=dataset))
  progress = metric_logging.ProgressReporter(config.num_train_steps, start_step)

  # Metrics stay on the device until a log, checkpoint or figure step needs
  # them: fetching every step would stall the dispatch of the next one. But
  # the loop never runs more than a few steps ahead of the device: on XLA:CPU
  # an unbounded run-ahead deadlocks the all-reduce (run_ahead.py).
  in_flight = run_ahead.RunAhead()
  pending: list[dict[str, jax.Array]] = []
  fetched: list[dict[str, np.ndarray]] = []
  last_interval: dict[str, np.ndarray] = {}

  def fetch_pending(step: int) -> None:
    """Moves metrics of steps ≤ `step` to the host; fails on non-finite."""
    history = jax.device_get(pending)
    first_step = step - len(history) + 1
    bad_step = first_nonfinite(history, first_step)
    if bad_step is not None:
      raise FloatingPointError(
          f'Non-finite loss or gradient at step {bad_step} (loss='
          f'{history[bad_step - first_step]["loss"]}). Checkpoints up to step '
          f'{manager.latest_step()} in {checkpointing.checkpoint_dir(workdir)} '
          'are kept; lower config.learning_rate or check the data.')
    fetched.extend(history)
    pending.clear()

  if start_step >= config.num_train_steps:
    logging.info('Already trained for %d ≥ num_train_steps=%d steps.', start_step,
                 config.num_train_steps)
  logging.info('Training from step %d to %d.', start_step, config.num_train_steps)
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      local_images = next(batches)['image']
      images = jax.make_array_from_process_local_data(batch_sharding,
                                                      local_images)
      state, metrics = step_fn(state, images, noise_key)
      in_flight.admit(metrics['loss'])
      pending.append(metrics)
      is_last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or is_last:
        fetch_pending(step)
        last_interval = mean_metrics(fetched)
        fetched.clear()
        scalars = metric_logging.flatten_metrics(last_interval)
        timing = progress.report(step)
        scalars['steps_per_sec'] = timing['steps_per_sec']
        scalars['images_per_sec'] = timing['steps_per_sec'] * config.batch_size
        writer.write_scalars(step, scalars)
        logging.info('Step %d/%d, %.1f steps/s, ETA %s.', step,
                     config.num_train_steps, timing['steps_per_sec'],
                     metric_logging.format_eta(timing['eta_seconds']))
      if step % config.checkpoint_every_steps == 0 or is_last:
        fetch_pending(step)  # Never save a state whose history is unchecked.
        checkpointing.save(manager, step, state, config)
      if config.eval_every_steps and (
          step % config.eval_every_steps == 0 or is_last):
        run_periodic_evaluation(config, workdir, step, state.params, dataset)
      if (step % config.figure_every_steps == 0 or is_last) and is_chief:
        fetch_pending(step)
        kl_per_latent = mean_metrics(fetched or [last_interval])['kl_per_latent']
        paths = figure_writer.write(step, state.params, kl_per_latent, writer)
        logging.info('Wrote %s.', ', '.join(paths))
    logging.info(in_flight.summary())
  finally:
    manager.wait_until_finished()
    writer.flush()
    writer.close()
  return state
