"""Many models in one process: seeds × hyperparameters trained by one step.

A sweep config is a training config with a `sweep` block (configs/sweep_*.py):

  config.sweep.seeds = (0, 1, 2)              # one member per seed ...
  config.sweep.grid = {'beta': (1.0, 4.0)}   # ... × per grid point
  config.sweep.shared_batches = True          # common random numbers

Members are the Cartesian product seeds × grid (fields: the numeric fields the
step reads, `step_lib.hyperparameter_fields(config.objective)`: the
objective's, e.g. beta, gamma, capacity_max, and learning_rate). Their
TrainStates are stacked along a leading member axis and `sweep_step` updates
all of them in one jitted call of `step_lib.train_step` per member, batched
with `jax.vmap` or run one after another with `lax.map`
(config.sweep.member_layout, below). Member i computes exactly what training
it alone computes: the same initialisation (its seed), the same noise, the same
batches, the same step function; `member_config(config, member)` is the config
that trains it alone.

Data per member:
  * shared_batches=True (default): every member sees the same batch at step s,
    drawn with the sweep's data seed (config.data_seed, else config.seed).
    Differences between members are then due to seed and hyperparameters alone
    (common random numbers), the pipeline reads one batch per step, and the
    first layer of all members runs as one wide matrix product.
  * shared_batches=False: member i reads its own stream, seeded with its seed,
    exactly as its solo run with data_seed unset; the pipeline reads M batches.
With config.data_on_device the same batches are gathered on the devices from
one copy of the training records (training/device_data.py), as for one run.

Device layout: a 2-D mesh (`members`, `data`). Members are split over the
`members` axis (config.sweep.member_devices devices; 0 picks the largest count
that divides both the member count and the local device count, on CPU at most
one per core: `member_device_count`) and each member's batch over `data`. On
CPU, where XLA runs each convolution on one core, putting members on different
devices keeps every core busy with less of the per-step gradient all-reduce
of data parallelism.

Member layout (config.sweep.member_layout): 'vmap' batches the members' steps
into one (grouped convolutions, batched matrix products); 'map' runs, on each
device of the members axis, its members' unbatched steps one after another
inside the same program; 'loop' calls one compiled step once per member, each
member data-parallel over all devices as its solo run is (member_loop.py);
'auto' (default) picks by backend and member count from measurements
(`resolve_member_layout`; docs/benchmarks.md). All compute every member's own step; the sweep tests
compare each layout's members with their solo runs.

A member whose loss or gradient turns non-finite is frozen at its last finite
state (its updates are dropped inside the step) and reported by name; the
others train on unaffected, since members share no computation.
"""

import dataclasses
import itertools
import os
from typing import Any, Callable, Mapping, Sequence

from absl import logging
from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bvae_jax.core import checkpointing
from bvae_jax.core import devices
from bvae_jax.core import metric_logging
from bvae_jax.core import run_records
from bvae_jax.core import step as step_lib
from bvae_jax.datasets import input_pipeline
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.evaluation import evaluate
from bvae_jax import experiment_config
from bvae_jax.figures import training_figures
from bvae_jax.models import vae
from bvae_jax.sweeps import member_loop
from bvae_jax.sweeps import sweep_report
from bvae_jax.training import device_data
from bvae_jax.training import loop

MEMBER_AXIS = 'members'
# How a step runs the members on each device (config.sweep.member_layout):
#   'vmap': batched into one step (wide matrix products, grouped convolutions);
#   'map':  one member's unbatched step after another inside one program
#           (lax.map), on the devices of its member group;
#   'loop': one compiled step called once per member, each member over all
#           devices (member_loop.py); the members axis has one device.
MEMBER_LAYOUTS = ('vmap', 'map', 'loop')
# 'auto' picks per backend and member count, from benchmarks.sweep
# (docs/benchmarks.md, "Sweep layouts"; `resolve_member_layout`): on XLA:CPU
# the batched convolutions are slower than the same convolutions run one
# member at a time, and 'map' beats 'loop' once its member groups hold two
# members or more; on accelerators one batch-64 model fills a fraction of the
# chip and batching members is what fills it.
DEFAULT_MEMBER_LAYOUT = 'vmap'
# On CPU the automatic members axis has at most this many devices per core, so
# with the default two host devices per core each member is data-parallel over
# two of them. On 2 cores (4 devices) members 2 x data 2 ran 1.073x the speed
# of members 4 x data 1 at 4 members (16 of 16 rounds faster) and 1.023x at 8
# (13 of 16): medians of per-round ratios, benchmarks.sweep
# (docs/benchmarks.md, "Issue 29: sweep member layouts on CPU").
MEMBER_GROUPS_PER_CORE = 1
# Where each member's TensorBoard run, figures and evaluation go.
MEMBERS_DIR = 'members'


@dataclasses.dataclass(frozen=True)
class Member:
  """One model of a sweep.

  Attributes:
    index: position along the stacked member axis.
    name: e.g. 'beta=4,seed=0'; also its directory under workdir/members.
    seed: its config.seed (initialisation, noise; data order if not shared).
    values: the swept hyperparameters' values, {field: value}.
  """
  index: int
  name: str
  seed: int
  values: Mapping[str, float]


class SweepState(struct.PyTreeNode):
  """The state of all members.

  Attributes:
    step: steps the sweep has run (int32 scalar).
    members: the members' TrainStates stacked along a leading axis.
    failed_at: (M,) int32, the step whose loss or gradient was first
      non-finite; 0 while the member is healthy.
  """
  step: jax.Array
  members: step_lib.TrainState
  failed_at: jax.Array


def _format_value(value: float) -> str:
  return f'{value:g}'


def sweep_members(config: ml_collections.ConfigDict) -> list[Member]:
  """The members of a sweep config: grid points (in order) × seeds.

  Raises:
    ValueError: on a missing or empty sweep block, a grid field that is not a
      hyperparameter, duplicate values, or a negative seed.
  """
  sweep = config.get('sweep')
  if sweep is None:
    raise ValueError('config has no `sweep` block; see configs/sweep_beta.py')
  seeds = list(sweep.seeds)
  grid = dict(sweep.grid or {})
  if not seeds:
    raise ValueError('config.sweep.seeds is empty')
  if len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise ValueError(f'config.sweep.seeds must be distinct and ≥ 0, got {seeds}')
  for field, values in grid.items():
    sweepable = step_lib.hyperparameter_fields(config.objective)
    if field not in sweepable:
      raise ValueError(f'config.sweep.grid.{field}: not a sweepable field of '
                       f'objective {config.objective!r}; sweepable: {sweepable}')
    if not values or len(set(values)) != len(values):
      raise ValueError(f'config.sweep.grid.{field} must list distinct values, '
                       f'got {values}')
  fields = list(grid)
  members = []
  for point in itertools.product(*(grid[field] for field in fields)):
    for seed in seeds:
      values = {field: float(value) for field, value in zip(fields, point)}
      name = ','.join([f'{f}={_format_value(v)}' for f, v in values.items()] +
                      [f'seed={seed}'])
      members.append(Member(len(members), name, int(seed), values))
  return members


def member_config(config: ml_collections.ConfigDict,
                  member: Member) -> ml_collections.ConfigDict:
  """The config that trains `member` alone (no sweep block), bit for bit;
  resolved (experiment_config.resolve) as the sweep's config is."""
  config = experiment_config.resolve(config)
  solo = ml_collections.ConfigDict(config.to_dict())
  del solo['sweep']
  if config.sweep.shared_batches:
    solo.data_seed = input_pipeline.batch_order(config)['seed']
  else:
    solo.data_seed = None
  solo.seed = member.seed
  for field, value in member.values.items():
    solo[field] = type(config[field])(value)
  return solo


def validate_sweep_config(config: ml_collections.ConfigDict) -> list[Member]:
  """Checks the sweep block and every member's config; returns the members."""
  members = sweep_members(config)
  if config.sweep.member_devices < 0:
    raise ValueError('config.sweep.member_devices must be ≥ 0, got '
                     f'{config.sweep.member_devices}')
  layout = config.sweep.get('member_layout', 'auto')
  if layout not in MEMBER_LAYOUTS + ('auto',):
    raise ValueError(f'config.sweep.member_layout must be one of '
                     f"{MEMBER_LAYOUTS + ('auto',)}, got {layout!r}")
  if layout == 'loop' and config.sweep.member_devices > 1:
    raise ValueError(
        "config.sweep.member_layout='loop' trains each member over all "
        'devices, so config.sweep.member_devices must be 0 or 1, got '
        f'{config.sweep.member_devices}')
  for member in members:
    try:
      experiment_config.validate_config(member_config(config, member))
    except ValueError as error:
      raise ValueError(f'sweep member {member.name}: {error}') from error
  return members


def member_device_count(requested: int, num_members: int,
                        backend: str | None = None,
                        cores: int | None = None) -> int:
  """Devices along the members axis.

  Args:
    requested: config.sweep.member_devices; 0 picks automatically.
    num_members: the sweep's member count.
    backend: jax's backend (None: the default one).
    cores: the CPU cores this process may use (None: all it may run on).

  Returns:
    `requested`, or for 0 the most devices that divide the member count and
    the local devices; on CPU at most one per core (`MEMBER_GROUPS_PER_CORE`).

  Raises:
    ValueError: `requested` does not divide the members and the devices.
  """
  local = jax.local_device_count()
  if requested:
    if num_members % requested or local % requested:
      raise ValueError(
          f'config.sweep.member_devices={requested} must divide the member '
          f'count ({num_members}) and the devices per process ({local})')
    return requested
  most = local
  if (backend or jax.default_backend()) == 'cpu':
    cores = devices.available_cores() if cores is None else cores
    most = max(1, min(local, MEMBER_GROUPS_PER_CORE * cores))
  return max(n for n in range(1, most + 1)
             if num_members % n == 0 and local % n == 0)


def resolve_member_layout(requested: str, backend: str, num_members: int,
                          member_groups: int) -> str:
  """The member layout config.sweep.member_layout names; 'auto' by measurement.

  Args:
    requested: config.sweep.member_layout.
    backend: jax's backend.
    num_members: the sweep's member count.
    member_groups: the devices along the members axis that 'map' would use
      (`member_device_count`).

  Returns:
    `requested`, or for 'auto': 'vmap' on accelerators; on CPU 'map' where
    there are several member groups of at least two members each, else
    'loop'. On 2 cores (4 devices; medians of per-round ratios to the members
    run one by one, benchmarks.sweep) 'map' on 2 x 2 ran 0.88x at 2 members,
    1.06x at 4 and 1.12x at 8; 'loop' 0.98x, 0.99x and 0.95x.
  """
  if requested != 'auto':
    return requested
  if backend != 'cpu':
    return DEFAULT_MEMBER_LAYOUT
  if member_groups >= 2 and num_members >= 2 * member_groups:
    return 'map'
  return 'loop'


def create_sweep_mesh(member_devices: int) -> jax.sharding.Mesh:
  """A (members, data) mesh; each group of `member_devices` consecutive
  devices holds all members of one data shard, so a process (whose devices
  are consecutive) holds whole data shards."""
  all_devices = np.asarray(jax.devices())
  data_devices = len(all_devices) // member_devices
  grid = all_devices.reshape(data_devices, member_devices).T
  auto = jax.sharding.AxisType.Auto
  return jax.sharding.Mesh(grid, (MEMBER_AXIS, devices.DATA_AXIS),
                           axis_types=(auto, auto))


def _sharding(mesh, *spec):
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))


def member_hyperparameters(config, members: Sequence[Member]
                           ) -> dict[str, np.ndarray]:
  """{field: (M,) float32}: each member's `step_lib.hyperparameters`."""
  per_member = [step_lib.hyperparameters(member_config(config, m)) for m in members]
  return {name: np.stack([h[name] for h in per_member])
          for name in per_member[0]}


def member_keys(members: Sequence[Member]) -> tuple[jax.Array, jax.Array]:
  """Stacked (init keys, noise keys), each member's from its seed."""
  keys = [step_lib.rng_streams(m.seed) for m in members]
  return (jnp.stack([k[0] for k in keys]), jnp.stack([k[1] for k in keys]))


def _member_update(member, failed_at, member_images, noise_key,
                   member_hparams, *, step, model, static):
  """One member's `train_step`; a non-finite step is dropped and recorded."""
  new_member, metrics = step_lib.train_step(
      member, member_images, noise_key, member_hparams, model=model,
      static=static)
  finite = jnp.isfinite(metrics['loss']) & jnp.isfinite(metrics['grad_norm'])
  healthy = failed_at == 0
  keep_new = healthy & finite
  # A cond, not a `where` over every leaf: unbatched, the where made the
  # member's step 0.84x the solo step on XLA:CPU, the cond 0.97x
  # (benchmarks/member_freeze.py; docs/benchmarks.md). Under vmap it becomes
  # that select again.
  member = jax.lax.cond(keep_new, lambda: new_member, lambda: member)
  failed_at = jnp.where(healthy & ~finite, step + 1, failed_at)
  return member, failed_at, metrics


def sweep_step(state: SweepState, images: jax.Array, noise_keys: jax.Array,
               hparams: Mapping[str, jax.Array], *, model: vae.VAE,
               static: Mapping[str, str], shared_batches: bool,
               member_layout: str = 'vmap', member_groups: int = 1
               ) -> tuple[SweepState, dict[str, jax.Array]]:
  """`step_lib.train_step` of every member; non-finite members freeze.

  Args:
    state: the sweep's state.
    images: (N, 64, 64, C) shared by all members, or (M, N, 64, 64, C).
    noise_keys: (M,) the members' noise keys.
    hparams: {field: (M,)} the members' `step_lib.hyperparameters`.
    model: the VAE (the same architecture for every member).
    static: `step_lib.static_fields` of the config.
    shared_batches: whether `images` is shared.
    member_layout: 'vmap' (the members' steps batched into one step) or
      'map' (`member_groups` groups batched, each running its members'
      steps one after another; see `MEMBER_LAYOUTS`).
    member_groups: with 'map', the groups: the devices along the member axis.

  Returns:
    The new state and the members' metrics, each with a leading (M,) axis.
  """

  batched_over_members = (state.members, state.failed_at, noise_keys, hparams)
  if not shared_batches:
    batched_over_members += (images,)

  def update_one(per_member):
    if shared_batches:
      member, failed_at, noise_key, member_hparams = per_member
      member_images = images
    else:
      member, failed_at, noise_key, member_hparams, member_images = per_member
    return _member_update(member, failed_at, member_images, noise_key,
                          member_hparams, step=state.step, model=model,
                          static=static)

  if member_layout == 'vmap':
    members, failed_at, metrics = jax.vmap(update_one)(batched_over_members)
  else:
    # One member's step after another inside the program: split the member
    # axis into (member devices, members per device), vmap over the devices'
    # axis (its shards stay where they are) and lax.map over the rest, so
    # each device runs its members' unbatched steps in turn.
    def split(leaf):
      return leaf.reshape((member_groups, leaf.shape[0] // member_groups) +
                          leaf.shape[1:])

    def merge(leaf):
      return leaf.reshape((-1,) + leaf.shape[2:])

    grouped = jax.tree.map(split, batched_over_members)
    members, failed_at, metrics = jax.tree.map(merge, jax.vmap(
        lambda group: jax.lax.map(update_one, group))(grouped))
  return SweepState(step=state.step + 1, members=members,
                    failed_at=failed_at), metrics


@dataclasses.dataclass
class SweepSetup:
  """Everything that runs a sweep's steps (see `setup_sweep`)."""
  config: ml_collections.ConfigDict
  members: list[Member]
  model: vae.VAE
  mesh: jax.sharding.Mesh
  state_sharding: Any  # Of SweepState (a pytree of NamedShardings).
  images_sharding: jax.sharding.NamedSharding
  step_fn: Callable  # (working state, images) -> (working state, metrics).
  member_layout: str  # One of MEMBER_LAYOUTS.
  abstract_state: SweepState

  def working_state(self, state: SweepState) -> SweepState:
    """The form `step_fn` takes of a stacked state (checkpoints hold that).

    For 'loop', members and failed_at become tuples, one entry per member
    (member_loop.py); the other layouts train the stacked state itself.
    """
    if self.member_layout != 'loop':
      return state
    count, replicated = len(self.members), _sharding(self.mesh)
    return SweepState(
        step=state.step,
        members=member_loop.unstack_members(state.members, count, replicated),
        failed_at=member_loop.unstack_members(state.failed_at, count,
                                              replicated))

  def stacked_state(self, state: SweepState) -> SweepState:
    """The stacked state (what checkpoints hold) of a working state."""
    if self.member_layout != 'loop':
      return state
    return SweepState(
        step=state.step,
        members=member_loop.stack_members(state.members,
                                          self.state_sharding.members),
        failed_at=member_loop.stack_members(state.failed_at,
                                            self.state_sharding.failed_at))

  @property
  def batch_per_member_arrays(self) -> bool:
    """Whether `step_fn` takes one batch array per member ('loop' with
    per-member batches) rather than one array."""
    return (self.member_layout == 'loop' and
            not self.config.sweep.shared_batches)

  def host_failed_at(self, state: SweepState) -> np.ndarray:
    """(M,) each member's failed_at, on the host, from a working state."""
    if self.member_layout != 'loop':
      return host_array(state.failed_at)
    return np.array([host_array(f) for f in state.failed_at], np.int32)

  def host_metrics(self, metrics) -> dict[str, np.ndarray]:
    """{name: (M, ...)} on the host, from `step_fn`'s metrics."""
    if self.member_layout != 'loop':
      return jax.tree.map(host_array, metrics)
    per_member = [jax.tree.map(host_array, m) for m in metrics]
    return {name: np.stack([m[name] for m in per_member])
            for name in per_member[0]}


def setup_sweep(config: ml_collections.ConfigDict) -> SweepSetup:
  """Validates the sweep, builds its mesh and its jitted, donating step."""
  config = experiment_config.resolve(config)
  members = validate_sweep_config(config)
  num_members = len(members)
  member_devices = member_device_count(config.sweep.member_devices,
                                       num_members)
  layout = resolve_member_layout(config.sweep.get('member_layout', 'auto'),
                                 jax.default_backend(), num_members,
                                 member_devices)
  if layout == 'loop':  # Each member over all devices.
    member_devices = 1
  mesh = create_sweep_mesh(member_devices)
  data_devices = mesh.shape[devices.DATA_AXIS]
  devices.check_batch_divisible(config.batch_size, data_devices)
  model = step_lib.create_model(config)
  shared = config.sweep.shared_batches
  by_member = _sharding(mesh, MEMBER_AXIS)
  replicated = _sharding(mesh)
  init_keys, noise_keys = member_keys(members)
  shapes = jax.eval_shape(
      lambda: _initial_state(model, config.objective, init_keys))
  state_sharding = SweepState(
      step=replicated,
      members=jax.tree.map(lambda _: by_member, shapes.members),
      failed_at=by_member)
  abstract_state = jax.tree.map(
      lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                  sharding=sharding),
      shapes, state_sharding)
  images_sharding = (_sharding(mesh, devices.DATA_AXIS)
                     if shared or layout == 'loop' else
                     _sharding(mesh, MEMBER_AXIS, devices.DATA_AXIS))
  static = step_lib.static_fields(config)
  hparams = member_hyperparameters(config, members)
  if layout == 'loop':
    step_fn = _loop_step_fn(noise_keys, hparams, replicated, images_sharding,
                            model=model, static=static, shared_batches=shared)
  else:
    keys = _global_array(np.asarray(jax.random.key_data(noise_keys)),
                         by_member)
    hparams = {name: _global_array(values, by_member) for name, values in
               hparams.items()}
    step_fn = _step_fn(keys, hparams, state_sharding, images_sharding,
                       by_member, model=model, static=static,
                       shared_batches=shared, member_layout=layout,
                       member_groups=member_devices)
  logging.info('Sweep of %d members on mesh %s (%s batches, member layout '
               '%r).', num_members, dict(mesh.shape),
               'shared' if shared else 'per-member', layout)
  return SweepSetup(config=config, members=members, model=model, mesh=mesh,
                    state_sharding=state_sharding,
                    images_sharding=images_sharding, step_fn=step_fn,
                    member_layout=layout, abstract_state=abstract_state)


def _step_fn(keys, hparams, state_sharding, images_sharding, by_member,
             **step_options):
  """(state, images) -> (state, metrics): jitted, donating the state."""
  step = jax.jit(
      lambda state, images, key_data, hparams: sweep_step(
          state, images, jax.random.wrap_key_data(key_data), hparams,
          **step_options),
      in_shardings=(state_sharding, images_sharding, by_member, by_member),
      out_shardings=(state_sharding, by_member),
      donate_argnums=0)
  return lambda state, images: step(state, images, keys, hparams)


def _loop_step_fn(noise_keys, hparams, replicated, images_sharding, *, model,
                  static, shared_batches):
  """The 'loop' layout's step (member_loop.make_loop_step), from the stacked
  noise keys and {field: (M,)} hyperparameters."""
  return member_loop.make_loop_step(
      lambda member, failed_at, images, key_data, member_hparams, step:
      _member_update(member, failed_at, images,
                     jax.random.wrap_key_data(key_data), member_hparams,
                     step=step, model=model, static=static),
      noise_keys=[_global_array(np.asarray(jax.random.key_data(key)),
                                replicated) for key in noise_keys],
      hparams=[{name: _global_array(values[i], replicated)
                for name, values in hparams.items()}
               for i in range(len(noise_keys))],
      state_sharding=replicated,
      images_sharding=images_sharding, shared_batches=shared_batches)


def _global_array(values: np.ndarray, sharding) -> jax.Array:
  """`values` (the same on every process) as an array with `sharding`.

  Unlike device_put, this also works when the sharding spans processes.
  """
  return jax.make_array_from_callback(values.shape, sharding,
                                      lambda index: values[index])


def _initial_state(model, objective_name: str, init_keys) -> SweepState:
  members = jax.vmap(lambda key: step_lib.create_train_state(
      model, key, objective_name))(init_keys)
  return SweepState(step=jnp.zeros((), jnp.int32), members=members,
                    failed_at=jnp.zeros(init_keys.shape[:1], jnp.int32))


def initial_sweep_state(setup: SweepSetup) -> SweepState:
  init_keys, _ = member_keys(setup.members)
  return jax.jit(lambda keys: _initial_state(setup.model,
                                             setup.config.objective, keys),
                 out_shardings=setup.state_sharding)(init_keys)


def sweep_batches(setup: SweepSetup, dataset, start_step: int):
  """The batches `setup.step_fn` takes, for steps start_step, start_step + 1, …

  Gathered on the devices from one copy of the training records
  (config.data_on_device: training/device_data.py), else read by the host
  pipeline; the same batches either way. Close the iterator when done.
  """
  config = setup.config
  if not config.data_on_device:
    return _SweepBatches(setup, dataset, start_step)
  if config.sweep.shared_batches:
    return device_data.create_device_batches(
        dataset, setup.mesh, **input_pipeline.batch_order(config),
        start_step=start_step, sharding=setup.images_sharding)
  orders = [input_pipeline.batch_order(member_config(config, member))
            for member in setup.members]
  return device_data.create_member_device_batches(
      dataset, setup.mesh, batch_size=config.batch_size,
      seeds=[order['seed'] for order in orders],
      subset_size=orders[0]['subset_size'], start_step=start_step,
      sharding=setup.images_sharding,
      stacked=not setup.batch_per_member_arrays)


class _SweepBatches:
  """The sweep's global batches as sharded arrays, shared or per member,
  read by the host pipeline."""

  def __init__(self, setup: SweepSetup, dataset, start_step: int):
    config = setup.config
    self._setup = setup
    if config.sweep.shared_batches:
      self._iterators = [input_pipeline.create_train_iterator(
          dataset, **input_pipeline.batch_order(config),
          start_step=start_step)]
    else:
      self._iterators = [input_pipeline.create_train_iterator(
          dataset, **input_pipeline.batch_order(member_config(config, m)),
          start_step=start_step) for m in setup.members]
    self._per_member_arrays = setup.batch_per_member_arrays
    self._global_shape = (
        (config.batch_size,) if config.sweep.shared_batches or
        self._per_member_arrays else
        (len(setup.members), config.batch_size)) + step_lib.image_shape(config.num_channels)

  def __next__(self) -> jax.Array | tuple[jax.Array, ...]:
    local = [next(iterator)['image'] for iterator in self._iterators]
    if self._per_member_arrays:
      return tuple(jax.make_array_from_process_local_data(
          self._setup.images_sharding, images, self._global_shape)
                   for images in local)
    local = (local[0] if self._setup.config.sweep.shared_batches
             else np.stack(local))
    return jax.make_array_from_process_local_data(
        self._setup.images_sharding, local, self._global_shape)

  def close(self) -> None:
    """Nothing to end: the host pipeline's iterators hold no workers."""


def member_workdir(workdir: str, member_name: str) -> str:
  """The directory of one member's TensorBoard run, figures and evaluation."""
  return os.path.join(workdir, MEMBERS_DIR, member_name)


def _report_failures(members, failed_at, reported: set[int]) -> None:
  for member, step in zip(members, failed_at):
    if step and member.index not in reported:
      reported.add(member.index)
      logging.warning(
          'Sweep member %s: non-finite loss or gradient at step %d; it is '
          'frozen at step %d and left out of the summary statistics. The '
          'other members are unaffected.', member.name, step, step - 1)


def train_sweep(config: ml_collections.ConfigDict, workdir: str) -> SweepState:
  """Trains (or resumes) every member of a sweep config in this process.

  Writes to `workdir`: `checkpoints/` (one Orbax tree of all members, with the
  config), `members/<name>/` (each member's TensorBoard run, figures and
  config.json: the config that trains it alone), `sweep_members.json`,
  `config.json`, `dataset.json` (the data, as a solo run records it), and at
  the end `sweep_results.{csv,md,json}` and the plot of
  config.sweep.plot_metric against the swept value (sweep_report.py).

  Returns:
    The final SweepState.

  Raises:
    ValueError: on a bad sweep or member config (naming the member and
      field), or a checkpoint of another sweep or architecture in workdir.
    FloatingPointError: when every member has failed.
    run_records.WorkdirInUseError: another run is using `workdir`.
  """
  run_records.check_workdir(workdir)
  # Validated before the lock, so that a bad value leaves the workdir as it was.
  config = experiment_config.resolve(config)
  validate_sweep_config(config)
  with run_records.workdir_lock(workdir, enabled=jax.process_index() == 0):
    return _train_sweep(config, workdir)


def _train_sweep(config: ml_collections.ConfigDict, workdir: str) -> SweepState:
  """train_sweep, with the workdir locked and the config resolved."""
  members = validate_sweep_config(config)
  dataset, config = run_records.open_training_data(config)
  setup = setup_sweep(config)
  is_chief = jax.process_index() == 0
  manager = checkpointing.create_manager(
      workdir, config.max_checkpoints_to_keep)
  state = setup.working_state(run_records.resume_or_init(
      manager, workdir, setup.abstract_state, config,
      lambda: initial_sweep_state(setup)))
  start_step = int(jax.device_get(state.step))
  # Before anything is written: data_on_device refuses data that won't fit.
  batches = sweep_batches(setup, dataset, start_step)
  try:
    writers = _write_records(config, workdir, members, dataset, start_step,
                             is_chief)
  except BaseException:
    batches.close()
    raise

  progress = loop.Progress(start_step, config.num_train_steps,
                           units_per_step=config.batch_size * len(members),
                           unit='member-images')
  pending: list[dict[str, jax.Array]] = []
  reported: set[int] = set()
  gap_monitors = [capacity_diagnostics.CapacityGapMonitor(
      member_config(config, member).get('gamma', 0), member.name)
                  for member in members]
  collapse_monitors = [capacity_diagnostics.CollapseMonitor(member.name)
                       for member in members]
  final: dict[str, np.ndarray] = {}

  def dispatch(step: int) -> jax.Array:
    nonlocal state
    del step  # The batches and the state's own step count it.
    state, metrics = setup.step_fn(state, next(batches))
    pending.append(metrics)
    return last_loss(metrics)

  def log(step: int) -> None:
    checkpointing.check_saves(manager)  # A full disk stops the run here.
    history = [setup.host_metrics(metrics) for metrics in pending]
    pending.clear()
    failed_at = setup.host_failed_at(state)
    _report_failures(members, failed_at, reported)
    if len(reported) == len(members):
      raise FloatingPointError(
          'Every sweep member has a non-finite loss or gradient (first at '
          f'steps {failed_at.tolist()}); checkpoints up to step '
          f'{manager.latest_step()} are kept.')
    means, has_data = _log_members(step, history, members, failed_at,
                                   writers)
    for member, gap, collapse in zip(members, gap_monitors,
                                     collapse_monitors):
      if has_data[member.index]:
        member_means = {name: value[member.index]
                        for name, value in means.items()}
        gap.update(step, member_means)
        collapse.update(step, member_means)
    for name, value in means.items():  # A failed member keeps its last.
      final[name] = (value if name not in final else np.where(
          has_data.reshape((-1,) + (1,) * (value.ndim - 1)), value,
          final[name]))
    # One line for all members (each member's values go to its own
    # TensorBoard run): the median of each loss term over them.
    progress.report(step, _member_medians(means, has_data),
                    label=f'median of {int(has_data.sum())} members')

  checkpoints = loop.Checkpoints(
      lambda step: checkpointing.save(manager, step, setup.stacked_state(state),
                                      config.to_dict()),
      start_step)

  try:
    loop.run_loop(dispatch, start_step=start_step,
                  num_train_steps=config.num_train_steps, progress=progress,
                  save=checkpoints.save_if_unsaved,
                  actions=[
                      loop.Periodic('log', config.log_every_steps, log),
                      loop.Periodic('checkpoint',
                                    config.checkpoint_every_steps,
                                    checkpoints.save),
                  ])
  finally:
    batches.close()  # Ends data_on_device's position workers now.
    checkpointing.finish_saves(manager)  # A failed save raises here.
    for writer in writers:
      writer.flush()
      writer.close()

  state = setup.stacked_state(state)
  if is_chief and final:
    failed_at = host_array(state.failed_at)
    evaluations = _finish_members(config, workdir, setup, state, dataset,
                                  final, failed_at)
    sweep_report.write_rows(
        workdir, sweep_report.member_rows(members, final, failed_at,
                                          evaluations),
        swept=config.sweep.grid or {}, num_train_steps=config.num_train_steps,
        plot_metric_name=config.sweep.plot_metric)
  return state


def _write_records(config, workdir, members, dataset, start_step, is_chief
                   ) -> list[metric_logging.MetricWriter]:
  """Each member's config.json and TensorBoard writer, and the sweep's
  sweep_members.json, config.json and dataset.json; returns the writers."""
  writers = []
  for member in members:
    member_dir = member_workdir(workdir, member.name)
    if is_chief:
      os.makedirs(member_dir, exist_ok=True)
      run_records.write_config_json(member_dir, member_config(config, member),
                                    start_step)
    writers.append(metric_logging.MetricWriter(member_dir,
                                               just_logging=not is_chief))
  if is_chief:
    run_records.write_json(os.path.join(workdir, 'sweep_members.json'),
                           [dataclasses.asdict(m) for m in members])
    run_records.write_config_json(workdir, config, start_step)
    # The data every member trained on, as a solo run records it.
    run_records.write_dataset_json(workdir, dataset)
  return writers


def last_loss(metrics) -> jax.Array:
  """The loss of a step's last computation, for the run-ahead bound.

  `metrics` is `SweepSetup.step_fn`'s: one dict of (M,) arrays, or for the
  'loop' layout a tuple of each member's dict (its last call is the last
  computation); a single model's step's dict works too.
  """
  return (metrics[-1] if isinstance(metrics, tuple) else metrics)['loss']


def _member_medians(means: dict[str, np.ndarray], has_data: np.ndarray
                    ) -> dict[str, float]:
  """{'loss': median over the healthy members, …} of the scalar metrics."""
  return {name: float(np.median(value[has_data]))
          for name, value in means.items()
          if value.ndim == 1 and has_data.any()}


def _log_members(step, history, members, failed_at, writers):
  """Per-member interval means to each member's TensorBoard run.

  Returns:
    ({metric: (M, ...)} the interval means, over the steps before a member
    failed (NaN if none); (M,) whether each member had such steps).
  """
  means = {}
  first_step = step - len(history) + 1
  for name in history[0]:
    values = np.stack([np.asarray(h[name]) for h in history])  # (T, M, ...)
    steps = np.arange(first_step, step + 1)
    before_failure = (failed_at[None, :] == 0) | (steps[:, None] <
                                                  failed_at[None, :])
    mask = before_failure.reshape(before_failure.shape + (1,) *
                                  (values.ndim - 2))
    with np.errstate(invalid='ignore'):
      means[name] = (np.where(mask, values, 0).sum(0) /
                     np.maximum(mask.sum(0), 1))
    means[name] = np.where(mask.any(0), means[name], np.nan)
  has_data = (failed_at == 0) | (failed_at > first_step)
  for member, writer in zip(members, writers):
    if has_data[member.index]:
      writer.write_scalars(step, metric_logging.flatten_metrics(
          {name: value[member.index] for name, value in means.items()}),
                           console=False)
  return means, has_data


def host_array(array: jax.Array) -> np.ndarray:
  """The whole of `array` on this host, from the shards this process holds.

  In a multi-process job the member-sharded state is not fully addressable,
  but every process holds each member (the mesh puts whole data shards, with
  all members, on each process), so its own shards cover the array.
  """
  if array.is_fully_addressable or array.is_fully_replicated:
    return np.asarray(jax.device_get(array))
  out = np.empty(array.shape, array.dtype)
  for shard in array.addressable_shards:
    out[shard.index] = np.asarray(shard.data)
  return out


def member_params(state: SweepState, index: int) -> Any:
  """Member `index`'s parameters, as a host-side pytree."""
  return jax.tree.map(lambda leaf: host_array(leaf)[index],
                      state.members.params)


def _finish_members(config, workdir, setup, state, dataset, final,
                    failed_at) -> dict[str, dict]:
  """Figures (and, with config.sweep.evaluate, metrics) of healthy members."""
  step = int(jax.device_get(state.step))
  figure_writer = None
  evaluations = {}
  for member in setup.members:
    if failed_at[member.index]:
      continue
    member_dir = member_workdir(workdir, member.name)
    solo = member_config(config, member)
    params = member_params(state, member.index)
    if figure_writer is None:
      figure_writer = training_figures.FigureWriter(
          setup.model, member_dir, input_pipeline.fixed_images(
              dataset, max(solo.num_figure_images, solo.traversal_steps)),
          likelihood=solo.likelihood,
          num_figure_images=solo.num_figure_images,
          traversal_steps=solo.traversal_steps,
          traversal_range=solo.traversal_range)
    figure_writer.set_workdir(member_dir)
    writer = metric_logging.MetricWriter(member_dir)
    figure_writer.write(step, params, final['kl_per_latent'][member.index],
                        writer)
    writer.close()
    if config.sweep.evaluate:
      if dataset.make_ground_truth is None:
        logging.warning('No evaluation: %s has no ground truth.',
                        config.dataset)
      else:
        # Every member reads the sweep's data set: its ground truth is
        # built for the first member only.
        evaluations[member.name] = evaluate.evaluate(
            solo, member_dir, step, params=params, dataset=dataset)
  return evaluations


def restore_member(config: ml_collections.ConfigDict, workdir: str,
                   member: int | str, step: int | None = None
                   ) -> tuple[ml_collections.ConfigDict, Any, int]:
  """Restores one member of a sweep checkpoint, for evaluation or inspection.

  Args:
    config: the sweep config.
    workdir: the sweep's workdir.
    member: the member's index or name (see workdir/sweep_members.json).
    step: the checkpoint step; None: the latest.

  Returns:
    (the config that trains the member alone, its params, the step).

  Raises:
    KeyError: no member of that index or name (lists the names).
    evaluate.NoCheckpointError, checkpointing.CheckpointMismatchError: as
      evaluate.restore_params.
  """
  config = experiment_config.resolve(config)
  chosen = find_member(config, member)
  step = evaluate.checkpoint_step(workdir, step)
  setup = setup_sweep(config)
  manager = checkpointing.create_manager(workdir, read_only=True)
  state, stored_config = checkpointing.restore(manager, step,
                                               setup.abstract_state)
  solo = run_records.data_source_as_trained(member_config(config, chosen),
                                     stored_config)
  return solo, member_params(state, chosen.index), step


def find_member(config: ml_collections.ConfigDict,
                member: int | str) -> Member:
  """The member of a sweep config with index or name `member`.

  Raises:
    KeyError: no such member (lists the names).
  """
  members = validate_sweep_config(config)
  chosen = [m for m in members if member in (m.index, m.name, str(m.index))]
  if not chosen:
    raise KeyError(f'No sweep member {member!r}; members: '
                   f'{[m.name for m in members]}')
  return chosen[0]
