r"""Burgess et al. (2018), Fig. 3: in which order controlled capacity buys factors.

The paper trains a generator that sees dSprites' ground-truth factors through
noisy channels with learned scale and noise (factor_generator.FactorConditionedGenerator;
how each factor enters: reproductions/factor_inputs.py), with Eq. 7's
objective: reconstruction + γ·|Σ_k KL_k − C|, C rising linearly from 0.5 to
25 nats. Its claims: below ~5 nats only x and y carry KL, in equal shares;
scale starts near 6 nats; then shape (reconstructed by ~15.4 nats); rotation
last (~23.8 nats).

  python -m bvae_jax.main --config=configs/burgess_fig3.py:quick --workdir=DIR

trains (resuming if DIR holds a checkpoint), then writes to DIR:

  fig3_capacity_allocation.png  each factor's KL against C, and against the
                                reconstruction loss, as the paper's Fig. 3 top
  fig3_reconstructions.png      the generator's output for fixed factors (one
                                noise draw) when C reached each of
                                config.snapshot_capacities, under the data
  capacity_allocation.json      per factor: `onset_nats` (C at the first
                                logged step its KL exceeds ONSET_KL_NATS) and
                                `final_kl`; and the run's final numbers
  reconstructions/C_<c>.npz     the snapshots behind the figure

Training data: every step draws `batch_size` factor combinations uniformly
from dSprites' 737,280 with a generator seeded by (seed, step) and renders
them (datasets/dsprites.py), so a resumed run sees the same batches. The
channel noise uses fold_in(noise key, step), like the VAE's train step.
"""

import functools
import json
import os
from typing import Any, Callable, Iterable

from absl import logging
from flax import struct
from flax import traverse_util
import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
import ml_collections
import numpy as np
import optax

from bvae_jax.core import checkpointing
from bvae_jax.core import devices
from bvae_jax.core import metric_logging
from bvae_jax.core import run_records
from bvae_jax.datasets import dsprites
from bvae_jax.models import factor_generator
from bvae_jax.objectives import capacity
from bvae_jax.objectives import likelihoods
from bvae_jax.reproductions import factor_inputs
from bvae_jax.training import loop

# A factor "has started" once its KL exceeds this (issue 13's definition).
ONSET_KL_NATS = 0.5
# Fixed factor combinations drawn in fig3_reconstructions.png.
NUM_SNAPSHOT_EXAMPLES = 8
_SNAPSHOT_SEED = 12345


class GeneratorState(struct.PyTreeNode):
  """Step, parameters and optimiser state of the generator."""
  step: jax.Array
  params: Any
  opt_state: Any


def create_model(factor_encoding: str, conv_impl: str = 'lax'
                 ) -> factor_generator.FactorConditionedGenerator:
  """The generator of inputs in `factor_encoding` (config.factor_encoding)."""
  return factor_generator.FactorConditionedGenerator(
      group_sizes=factor_inputs.group_sizes(factor_encoding),
      num_channels=1,
      conv_impl=conv_impl)


def create_optimizer(learning_rate: float, channel_learning_rate: float
                     ) -> optax.GradientTransformation:
  """Adam, with its own learning rate for the ten channel parameters.

  Adam moves a parameter by about its learning rate per step whatever the
  gradient, so at 5e-4 a noise log-variance needs ~2,000 steps per nat of
  one column's KL: a C ramp shorter than the paper's 100,000-ish steps would
  outrun the channels. channel_learning_rate (the config's) lets them follow
  it.
  """
  def label(path, _):
    return 'channels' if path[0] == 'channels' else 'decoder'
  return optax.multi_transform(
      {'channels': optax.adam(channel_learning_rate),
       'decoder': optax.adam(learning_rate)},
      lambda params: traverse_util.path_aware_map(label, params))


def create_state(model, init_key, optimizer) -> GeneratorState:
  """A fresh state at step 0 (pure; eval_shape-able)."""
  params_key, noise_key = jax.random.split(init_key)
  dummy = jnp.zeros((1, sum(model.group_sizes)), jnp.float32)
  params = model.init(params_key, dummy, noise_key)['params']
  return GeneratorState(step=jnp.zeros((), jnp.int32), params=params,
                        opt_state=optimizer.init(params))


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first bad field of a Fig. 3 config."""
  for field in ('batch_size', 'num_train_steps', 'capacity_anneal_steps',
                'log_every_steps', 'checkpoint_every_steps'):
    if int(config[field]) <= 0:
      raise ValueError(f'config.{field} must be > 0, got {config[field]!r}')
  for field in ('learning_rate', 'channel_learning_rate', 'gamma'):
    if not float(config[field]) > 0:
      raise ValueError(f'config.{field} must be > 0, got {config[field]!r}')
  factor_inputs.group_sizes(config.factor_encoding)  # Names a bad encoding.
  if not 0 <= config.capacity_start <= config.capacity_max:
    raise ValueError(
        'config.capacity_start and capacity_max must satisfy 0 ≤ start ≤ max, '
        f'got {config.capacity_start!r} and {config.capacity_max!r}')


def capacity_at(step, *, start: float, maximum: float, anneal_steps: int
                ) -> jax.Array:
  """C(step) of the linear schedule from `start` to `maximum`."""
  return capacity.capacity_schedule(step, start, maximum, anneal_steps)


def train_step(state: GeneratorState, inputs: jax.Array, images: jax.Array,
               noise_key: jax.Array, *, model, optimizer, gamma: float,
               capacity_fn: Callable[[jax.Array], jax.Array]
               ) -> tuple[GeneratorState, dict[str, jax.Array]]:
  """One update of Eq. 7: E[−log p(x|z)] + γ·|Σ_k KL_k − C(step)|.

  Args:
    state: the current state.
    inputs: (N, D) factor inputs (factor_inputs.dsprites_factor_inputs).
    images: (N, 64, 64, 1) the images of those factors, in [0, 1].
    noise_key: the run's noise key; this step's noise is fold_in(key, step).
    model: the generator.
    optimizer: `create_optimizer(...)`, which made the state's opt_state.
    gamma: γ, the weight of |KL − C|.
    capacity_fn: step -> C, e.g. `capacity_at` with the config's schedule.

  Returns:
    The new state and the step's metrics (batch means): loss, reconstruction,
    kl_total, capacity, kl_capacity_gap, and kl/<factor> per factor.
  """
  noise = jax.random.fold_in(noise_key, state.step)
  target = capacity_fn(state.step)

  def loss_fn(params):
    logits, kl = model.apply({'params': params}, inputs, noise)
    reconstruction = jnp.mean(likelihoods.bernoulli_nll(logits, images))
    kl_per_factor = jnp.mean(kl, axis=0)
    gap = jnp.abs(jnp.sum(kl_per_factor) - target)
    total = reconstruction + gamma * gap
    return total, (reconstruction, kl_per_factor, gap)

  (total, (reconstruction, kl_per_factor, gap)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  new_state = GeneratorState(step=state.step + 1,
                             params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state)
  metrics = {'loss': total, 'reconstruction': reconstruction,
             'kl_total': jnp.sum(kl_per_factor), 'capacity': target,
             'kl_capacity_gap': gap,
             'grad_norm': optax.tree.norm(grads)}
  for index, name in enumerate(factor_inputs.FACTOR_NAMES):
    metrics[f'kl/{name}'] = kl_per_factor[index]
  return new_state, metrics


def training_batch(step: int, *, seed: int, batch_size: int,
                   factor_encoding: str) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, images) of `step`: factors drawn with a (seed, step) generator."""
  rng = np.random.default_rng([seed, step])
  factors = rng.integers(0, dsprites.FACTOR_SIZES,
                         size=(batch_size, len(dsprites.FACTOR_SIZES)))
  images = dsprites.render(factors).astype(np.float32)
  return (factor_inputs.dsprites_factor_inputs(factors, factor_encoding),
          images)


def snapshot_factors() -> np.ndarray:
  """The fixed factor combinations of fig3_reconstructions.png."""
  rng = np.random.default_rng(_SNAPSHOT_SEED)
  return rng.integers(0, dsprites.FACTOR_SIZES,
                      size=(NUM_SNAPSHOT_EXAMPLES, len(dsprites.FACTOR_SIZES)))


def snapshot_steps(config) -> dict[int, float]:
  """{step: C} for the first step at which C reaches each snapshot capacity.

  Steps count updates done: the snapshot at step s shows the parameters
  after s updates, trained with C up to C(s − 1).
  """
  ramp = config.capacity_max - config.capacity_start
  steps = {}
  for target in config.snapshot_capacities:
    fraction = (target - config.capacity_start) / ramp
    step = int(np.ceil(fraction * config.capacity_anneal_steps))
    if 0 < step <= config.num_train_steps:
      steps[step] = float(target)
  return steps


def snapshot_path(workdir: str, target: float) -> str:
  return os.path.join(workdir, 'reconstructions', f'C_{target:.1f}.npz')


def write_snapshot(workdir, factor_encoding: str, model, state,
                   target: float) -> None:
  """Decodes the fixed factors with this step's parameters and one noise draw."""
  factors = snapshot_factors()
  inputs = factor_inputs.dsprites_factor_inputs(factors, factor_encoding)
  logits, kl = model.apply({'params': jax.device_get(state.params)}, inputs,
                           jax.random.key(_SNAPSHOT_SEED))
  os.makedirs(os.path.dirname(snapshot_path(workdir, target)), exist_ok=True)
  np.savez(snapshot_path(workdir, target),
           reconstructions=np.asarray(jax.nn.sigmoid(logits)),
           images=dsprites.render(factors), factors=factors,
           kl_per_factor=np.asarray(kl).mean(axis=0),
           step=int(state.step), capacity=target)


def train(config: ml_collections.ConfigDict, workdir: str) -> GeneratorState:
  """Trains (or resumes) the generator in `workdir`; returns the final state."""
  validate_config(config)
  run_records.check_workdir(workdir)
  devices.check_batch_divisible(config.batch_size, jax.device_count())
  mesh = devices.create_mesh()
  model = create_model(config.factor_encoding, config.conv_impl)
  optimizer = create_optimizer(config.learning_rate,
                               config.channel_learning_rate)
  root = jax.random.key(config.seed)
  init_key, noise_key = jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)
  make_state = functools.partial(create_state, model, optimizer=optimizer)
  replicated = devices.replicated(mesh)
  abstract = jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                        sharding=replicated),
      jax.eval_shape(make_state, init_key))
  manager = checkpointing.create_manager(
      workdir, config.max_checkpoints_to_keep)
  restored = checkpointing.restore_latest(manager, workdir, abstract)
  if restored is None:
    state = jax.jit(make_state, out_shardings=replicated)(init_key)
  else:
    state = restored[0]
    logging.info('Resuming from step %d.', int(state.step))
  capacity_fn = functools.partial(
      capacity_at, start=config.capacity_start, maximum=config.capacity_max,
      anneal_steps=config.capacity_anneal_steps)
  step_fn = jax.jit(functools.partial(train_step, model=model,
                                      optimizer=optimizer, gamma=config.gamma,
                                      capacity_fn=capacity_fn),
                    donate_argnums=0)
  sharded = devices.batch_sharded(mesh)
  writer = metric_logging.MetricWriter(workdir)
  start = int(state.step)
  progress = loop.Progress(start, config.num_train_steps,
                           units_per_step=config.batch_size)
  snapshots = snapshot_steps(config)
  interval_sums, interval_steps = None, 0

  def dispatch(done: int) -> jax.Array:
    nonlocal state, interval_sums, interval_steps
    # Step `done` trains on the batch of the state's step count, done - 1.
    inputs, images = training_batch(
        done - 1, seed=config.seed, batch_size=config.batch_size,
        factor_encoding=config.factor_encoding)
    state, metrics = step_fn(state, jax.device_put(inputs, sharded),
                             jax.device_put(images, sharded), noise_key)
    # Summed on the device and fetched once per interval: no per-step stall.
    interval_sums = metrics if interval_sums is None else jax.tree_util.tree_map(
        jnp.add, interval_sums, metrics)
    interval_steps += 1
    return metrics['loss']

  def snapshot(done: int) -> None:
    write_snapshot(workdir, config.factor_encoding, model, state,
                   snapshots[done])

  def log(done: int) -> None:
    nonlocal interval_sums, interval_steps
    checkpointing.check_saves(manager)  # A full disk stops the run here.
    means = {name: float(value) / interval_steps
             for name, value in jax.device_get(interval_sums).items()}
    if loop.first_nonfinite([means], done) is not None:
      raise FloatingPointError(f'non-finite loss at step {done}: {means}')
    means.update(progress.report(done, means))
    writer.write_scalars(done, means, console=False)
    interval_sums, interval_steps = None, 0

  checkpoints = loop.Checkpoints(
      lambda done: checkpointing.save(manager, done, state, config.to_dict()),
      start)

  try:
    loop.run_loop(dispatch, start_step=start,
                  num_train_steps=config.num_train_steps, progress=progress,
                  save=checkpoints.save_if_unsaved,
                  actions=[
                      loop.Periodic('snapshot', 0, snapshot,
                                    at_steps=tuple(snapshots)),
                      loop.Periodic('log', config.log_every_steps, log),
                      loop.Periodic('checkpoint',
                                    config.checkpoint_every_steps,
                                    checkpoints.save),
                  ])
  finally:
    checkpointing.finish_saves(manager)  # A failed save raises here.
    writer.close()
  return state


def capacity_allocation(history: dict[str, dict[int, float]]
                        ) -> dict[str, Any]:
  """Each factor's onset (C at first KL > ONSET_KL_NATS) and final KL.

  Args:
    history: {tag: {step: value}} of the run's scalars (capacity, kl/<factor>,
      reconstruction), as metric_logging.read_scalars returns them.
  """
  steps = sorted(history['capacity'])
  capacities = np.array([history['capacity'][s] for s in steps])
  factors = {}
  for name in factor_inputs.FACTOR_NAMES:
    kl = np.array([history[f'kl/{name}'][s] for s in steps])
    started = np.flatnonzero(kl > ONSET_KL_NATS)
    factors[name] = {
        'onset_nats': float(capacities[started[0]]) if len(started) else None,
        'final_kl': float(kl[-1]),
    }
  return {'factors': factors, 'onset_kl_nats': ONSET_KL_NATS,
          'final_step': steps[-1], 'final_capacity': float(capacities[-1]),
          'final_reconstruction': history['reconstruction'][steps[-1]]}


def save_allocation_figure(path: str, history) -> None:
  """Per-factor KL against C (left) and against reconstruction loss (right)."""
  steps = sorted(history['capacity'])
  capacities = [history['capacity'][s] for s in steps]
  reconstruction = [history['reconstruction'][s] for s in steps]
  figure = Figure(figsize=(10, 4))
  against_c, against_loss = figure.subplots(1, 2)
  for name in factor_inputs.FACTOR_NAMES:
    kl = [history[f'kl/{name}'][s] for s in steps]
    against_c.plot(capacities, kl, label=name)
    against_loss.plot(reconstruction, kl, label=name)
  against_c.plot(capacities, capacities, 'k--', linewidth=0.8, label='C')
  against_c.set(xlabel='capacity C (nats)', ylabel='KL per factor (nats)',
                title='KL by factor as C rises')
  against_loss.set(xlabel='reconstruction loss (nats)',
                   ylabel='KL per factor (nats)',
                   title='KL by factor against reconstruction')
  against_loss.invert_xaxis()  # Training runs left to right, as C does.
  against_c.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def save_reconstruction_figure(path: str, workdir: str,
                               capacities: Iterable[float]) -> list[float]:
  """Data on top, then one row per snapshot of `capacities`; returns the C
  of the rows drawn (those whose snapshot the run wrote)."""
  rows, labels, shown = [], [], []
  data = None
  for target in sorted(capacities):
    if not os.path.exists(snapshot_path(workdir, target)):
      continue
    with np.load(snapshot_path(workdir, target)) as snapshot:
      data = snapshot['images'].astype(np.float32)
      rows.append(snapshot['reconstructions'])
    labels.append(f'C = {target:g}')
    shown.append(target)
  if data is None:
    return shown
  rows, labels = [data] + rows, ['data'] + labels
  figure = Figure(figsize=(1.1 * NUM_SNAPSHOT_EXAMPLES + 1, 1.1 * len(rows)))
  axes = figure.subplots(len(rows), NUM_SNAPSHOT_EXAMPLES, squeeze=False)
  for row_axes, images, label in zip(axes, rows, labels):
    for axis, image in zip(row_axes, images):
      axis.imshow(image[..., 0], cmap='gray', vmin=0, vmax=1)
      axis.set_xticks([])
      axis.set_yticks([])
    row_axes[0].set_ylabel(label, fontsize=8)
  figure.subplots_adjust(wspace=0.05, hspace=0.05, left=0.08, right=0.99,
                         top=0.99, bottom=0.01)
  figure.savefig(path, dpi=100)
  return shown


def summarise(workdir: str, capacities: Iterable[float]) -> dict[str, Any]:
  """Draws the figures and writes capacity_allocation.json from the run.

  Args:
    workdir: the run's workdir.
    capacities: the snapshot capacities (`snapshot_steps(config).values()`).
  """
  history = metric_logging.read_scalars(workdir)
  summary = capacity_allocation(history)
  save_allocation_figure(
      os.path.join(workdir, 'fig3_capacity_allocation.png'), history)
  summary['reconstruction_snapshots_at_capacity'] = save_reconstruction_figure(
      os.path.join(workdir, 'fig3_reconstructions.png'), workdir, capacities)
  with open(os.path.join(workdir, 'capacity_allocation.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the generator (resuming) and draws Fig. 3; returns the summary."""
  train(config, workdir)
  summary = summarise(workdir, snapshot_steps(config).values())
  logging.info('Fig. 3 summary:\n%s', json.dumps(summary, indent=1))
  return summary
