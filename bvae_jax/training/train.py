"""The training loop of one run: resume or start, step, log, checkpoint, draw.

`train_and_evaluate(config, workdir)` drives `step.make_train_step` over the
input pipeline's batches (or, with config.data_on_device, the same batches
gathered from a copy of the data in device memory: device_data.py). The batch
of step s depends only on (seed, s) and the step's noise on (seed, s), so a run
is deterministic and a resumed run is bit-identical to an uninterrupted one.
Sweeps have their own loop (sweep.py) over the same step.
"""

import os
from typing import Any, Iterator

from absl import logging
import jax
import ml_collections
import numpy as np

from bvae_jax.core import checkpointing
from bvae_jax.core import devices
from bvae_jax.core import metric_logging
from bvae_jax.core import run_records
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import input_pipeline
from bvae_jax.datasets import registry
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.evaluation import evaluate
from bvae_jax import experiment_config
from bvae_jax.figures import training_figures
from bvae_jax.training import device_data
from bvae_jax.training import loop


def mean_metrics(metric_history: list[dict[str, np.ndarray]]
                 ) -> dict[str, np.ndarray]:
  """Averages each metric over the steps of a logging interval."""
  return {name: np.mean([m[name] for m in metric_history], axis=0)
          for name in metric_history[0]}


def training_batches(config: ml_collections.ConfigDict,
                     dataset: registry.Dataset, mesh: jax.sharding.Mesh,
                     start_step: int) -> Iterator[jax.Array]:
  """The global image batches of steps start_step, start_step + 1, ...

  Gathered on the device from a copy of the training records
  (config.data_on_device), else read by the host pipeline, each process its
  own rows; the batches are the same either way.
  """
  order = input_pipeline.batch_order(config)
  if config.data_on_device:
    return device_data.create_device_batches(dataset, mesh, **order,
                                             start_step=start_step)
  sharding = devices.batch_sharded(mesh)
  return (jax.make_array_from_process_local_data(sharding, batch['image'])
          for batch in input_pipeline.create_train_iterator(
              dataset, **order, start_step=start_step))


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
  evaluate.evaluate(config, workdir, step, params=params, dataset=dataset)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> step_lib.TrainState:
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
    run_records.WorkdirInUseError: another run is using `workdir`.
    FloatingPointError: on a non-finite loss or gradient, naming the step; the
      last good checkpoint is kept.
  """
  run_records.check_workdir(workdir)
  # Validated before the lock, so that a bad value leaves the workdir as it was.
  config = experiment_config.resolve(config)
  with run_records.workdir_lock(workdir, enabled=jax.process_index() == 0):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict,
                        workdir: str) -> step_lib.TrainState:
  """train_and_evaluate, with the workdir locked and the config resolved."""
  dataset, config = run_records.open_training_data(config)
  mesh = devices.create_mesh()
  devices.check_batch_divisible(config.batch_size, jax.device_count())
  is_chief = jax.process_index() == 0
  logging.info('Devices: %d (%s), processes: %d, mesh %s.', jax.device_count(),
               jax.devices()[0].device_kind, jax.process_count(),
               dict(mesh.shape))

  model = step_lib.create_model(config)
  abstract_state = step_lib.abstract_train_state(model, mesh,
                                                 config.objective)
  manager = checkpointing.create_manager(
      workdir, config.max_checkpoints_to_keep)
  state = run_records.resume_or_init(
      manager, workdir, abstract_state, config,
      lambda: step_lib.initial_train_state(
          model, mesh, seed=config.seed, objective_name=config.objective))
  start_step = int(jax.device_get(state.step))
  # Before anything is written: data_on_device refuses data that won't fit.
  batches = training_batches(config, dataset, mesh, start_step)

  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    run_records.write_config_json(workdir, config, start_step)
    run_records.write_dataset_json(workdir, dataset)
  writer = metric_logging.MetricWriter(workdir, just_logging=not is_chief)
  step_fn = step_lib.make_train_step(config, model, mesh)
  _, noise_key = step_lib.rng_streams(config.seed)
  figure_writer = training_figures.FigureWriter(
      model, workdir, input_pipeline.fixed_images(
          dataset, max(config.num_figure_images, config.traversal_steps)),
      likelihood=config.likelihood,
      num_figure_images=config.num_figure_images,
      traversal_steps=config.traversal_steps,
      traversal_range=config.traversal_range)
  progress = loop.Progress(start_step, config.num_train_steps,
                           units_per_step=config.batch_size)
  gap_monitor = capacity_diagnostics.CapacityGapMonitor(config.get('gamma', 0))
  collapse_monitor = capacity_diagnostics.CollapseMonitor()

  # Metrics stay on the device until a log, checkpoint or figure step needs
  # them: fetching every step would stall the dispatch of the next one (the
  # skeleton bounds how far the loop runs ahead: loop.run_loop).
  pending: list[dict[str, jax.Array]] = []
  fetched: list[dict[str, np.ndarray]] = []
  last_interval: dict[str, np.ndarray] = {}

  def fetch_pending(step: int) -> None:
    """Moves metrics of steps ≤ `step` to the host; fails on non-finite."""
    history = jax.device_get(pending)
    first_step = step - len(history) + 1
    bad_step = loop.first_nonfinite(history, first_step, ('loss', 'grad_norm'))
    if bad_step is not None:
      raise FloatingPointError(
          f'Non-finite loss or gradient at step {bad_step} (loss='
          f'{history[bad_step - first_step]["loss"]}). Checkpoints up to step '
          f'{manager.latest_step()} in {checkpointing.checkpoint_dir(workdir)} '
          'are kept; lower config.learning_rate or check the data.')
    fetched.extend(history)
    pending.clear()

  def dispatch(step: int) -> jax.Array:
    nonlocal state
    del step  # The batch iterator and the state's own step count it.
    state, metrics = step_fn(state, next(batches), noise_key)
    pending.append(metrics)
    return metrics['loss']

  def log(step: int) -> None:
    nonlocal last_interval
    checkpointing.check_saves(manager)  # A full disk stops the run here.
    fetch_pending(step)
    last_interval = mean_metrics(fetched)
    fetched.clear()
    gap_monitor.update(step, last_interval)
    collapse_monitor.update(step, last_interval)
    scalars = metric_logging.flatten_metrics(last_interval)
    scalars.update(progress.report(step, scalars))
    writer.write_scalars(step, scalars, console=False)

  def save_checkpoint(step: int) -> None:
    fetch_pending(step)  # Never save a state whose history is unchecked.
    checkpointing.save(manager, step, state, config.to_dict())

  checkpoints = loop.Checkpoints(save_checkpoint, start_step)

  def run_evaluation(step: int) -> None:
    # Saved first, so that the evaluated parameters are a checkpoint's (a
    # later --mode=evaluate or publish reads the same ones).
    checkpoints.save_if_unsaved(step)
    run_periodic_evaluation(config, workdir, step, state.params, dataset)

  def draw_figures(step: int) -> None:
    fetch_pending(step)
    kl_per_latent = mean_metrics(fetched or [last_interval])['kl_per_latent']
    paths = figure_writer.write(step, state.params, kl_per_latent, writer)
    logging.info('Wrote %s.', ', '.join(paths))

  eval_at_steps = tuple(config.get('eval_at_steps', ()))
  if (start_step and loop.is_time(start_step, config.eval_every_steps,
                                  config.num_train_steps, eval_at_steps) and
      not os.path.exists(evaluate.metrics_path(workdir, start_step))):
    # Stopped during the evaluation of the step it had just checkpointed: the
    # resumed loop starts after that step, so evaluate it here or never.
    logging.info('Step %d is checkpointed but was not evaluated; evaluating '
                 'it before training on.', start_step)
    run_periodic_evaluation(config, workdir, start_step, state.params, dataset)
  try:
    loop.run_loop(dispatch, start_step=start_step,
                  num_train_steps=config.num_train_steps, progress=progress,
                  save=checkpoints.save_if_unsaved,
                  actions=[
                      loop.Periodic('log', config.log_every_steps, log),
                      loop.Periodic('checkpoint',
                                    config.checkpoint_every_steps,
                                    checkpoints.save),
                      loop.Periodic('evaluate', config.eval_every_steps,
                                    run_evaluation, at_steps=eval_at_steps),
                      loop.Periodic('figures', config.figure_every_steps,
                                    draw_figures, enabled=is_chief),
                  ])
  finally:
    batches.close()  # Ends data_on_device's position workers now.
    checkpointing.finish_saves(manager)  # A failed save raises here.
    writer.flush()
    writer.close()
  if is_chief:
    logging.info('Wrote checkpoints to %s, TensorBoard events and figures to '
                 '%s.', checkpointing.checkpoint_dir(workdir), workdir)
  return state
