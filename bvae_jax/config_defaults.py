"""The defaults every config starts from, and the helpers config files share.

Configs are plain data: this module imports ml_collections and the standard
library only, so loading a config file loads nothing of the library. Names in
a config (the objective, the metrics, the data set) are resolved, and the data
set's and objective's defaults filled in, when a run starts
(`experiment_config.resolve`).

Config files in `configs/` start from `base_config()` and change what their
experiment needs.
"""

from typing import Any

import ml_collections

# The config fields a data set decides (its spec's config_updates in
# bvae_jax/datasets/): set_dataset leaves them None, resolve fills them in.
DATASET_FIELDS = ('num_channels', 'latent_dim', 'capacity_max')

# The strided-conv formulation training uses (bvae_jax/models/conv_layers.py: 'lax'
# is XLA's convolution, the reference; 'matmul' the faster one on CPU, same
# parameters); conv_layers.DEFAULT_CONV_IMPL is this value.
DEFAULT_CONV_IMPL = 'matmul'


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by every experiment: Burgess et al. (2018) on dSprites."""
  config = ml_collections.ConfigDict()

  # What runs the config (bvae_jax/main.py RUNNERS): 'train' is one run, or a
  # sweep when the config has a `sweep` block; a reproduction's name runs its
  # module (e.g. 'burgess_fig4a': its sweep, then the figure).
  config.runner = 'train'

  # Data.
  config.dataset = 'dsprites'  # Data set name; see bvae_jax/datasets/registry.py.
  config.dataset_source = 'auto'  # 'auto' (real if obtainable), 'real' or 'procedural'.
  config.data_dir = ml_collections.config_dict.placeholder(str)  # None: TFDS default dir.
  config.num_channels = 1  # Image channels the model reads and writes (1 or 3).
  # Train on this many records only (0: all): the first N of a permutation
  # fixed by the data set, the same for every seed and run.
  config.train_subset_size = 0
  # Keep the training records in device memory and gather each batch there
  # (bvae_jax/training/device_data.py): the same batches, without the host pipeline's
  # ~20k images/s limit. Single process only; the records must fit in half of
  # each device's free memory; sweeps ignore it.
  config.data_on_device = False

  # Model (Burgess et al. 2018, appendix A.1). latent_dim, num_channels and
  # capacity_max are dSprites' here; set_dataset leaves them to the data set
  # (None until the run starts: experiment_config.resolve).
  config.latent_dim = 10  # Number of latent Gaussians.
  config.conv_impl = DEFAULT_CONV_IMPL  # Strided-conv formulation ('lax': reference).

  # Objective: a module of bvae_jax/objectives (set_objective adds its fields).
  config.objective = 'capacity'  # 'capacity' (Burgess Eq. 8), 'beta_vae' (Higgins), ...
  config.likelihood = 'bernoulli'  # Decoder distribution: 'bernoulli' or 'gaussian'.
  config.gaussian_stddev = 1.0  # Fixed σ of the Gaussian decoder (unused for Bernoulli).
  config.beta = 1.0  # KL weight of the β-VAE objective (β = 1 is the VAE).
  config.gamma = 1000.0  # Weight γ of |KL − C| in the capacity objective.
  config.capacity_start = 0.0  # C at step 0, nats.
  config.capacity_max = 25.0  # C after the ramp, nats.
  config.capacity_anneal_steps = 100_000  # Steps of the linear ramp of C.

  # Optimisation.
  config.seed = 0  # Seeds parameters and noise, and data order unless data_seed is set.
  config.data_seed = ml_collections.config_dict.placeholder(int)  # None: seed.
  config.batch_size = 64  # Global batch size (over all devices and hosts).
  config.learning_rate = 5e-4  # Adam step size.
  config.num_train_steps = 300_000  # Total optimisation steps.

  # Bookkeeping.
  config.log_every_steps = 100  # Console and TensorBoard scalars.
  config.checkpoint_every_steps = 5_000  # Orbax checkpoints (also written at the end).
  config.max_checkpoints_to_keep = 3  # Older checkpoints are deleted.
  config.figure_every_steps = 25_000  # Reconstruction and traversal PNGs (also at the end).
  config.num_figure_images = 8  # Images in the reconstruction grid and traversal header.
  config.traversal_range = 3.0  # Latent traversals cover [−r, r].
  config.traversal_steps = 10  # Columns of the traversal figure.

  # Evaluation (bvae_jax/evaluation/evaluate.py): disentanglement_lib's sample sizes.
  config.eval_every_steps = 0  # Metric suite during training every N steps; 0: off.
  # And at exactly these steps (e.g. (10_000, 25_000, 50_000)); each is also
  # checkpointed, so its parameters are the ones a later --mode=evaluate reads.
  config.eval_at_steps = ()
  config.eval = ml_collections.ConfigDict()
  config.eval.seed = 0  # RandomState seed of every metric (disentanglement_lib: 0).
  config.eval.num_train = 10_000  # Training points of every metric.
  config.eval.num_test = 5_000  # Test / eval points of every metric.
  config.eval.batch_size = 64  # Pairs (β-VAE) / points (FactorVAE) per vote.
  config.eval.num_variance_estimate = 10_000  # FactorVAE's global variances.
  config.eval.num_bins = 20  # Histogram bins of MIG and modularity.
  config.eval.representation = 'mean'  # 'mean' or 'sampled' posterior.
  # The encoder alone runs fastest with XLA's convolution on CPU (5.2k vs 3.6k
  # images/s for 'matmul', batch 2048, 2 cores); parameters are the same.
  config.eval.conv_impl = 'lax'
  config.eval.encode_batch_size = 2048  # Images per encoder call.
  # DCI's gradient-boosted trees: 'fast' (metrics/gradient_boosting.py, a
  # refit of sklearn's, faster: docs/benchmarks.md) or 'sklearn' (sklearn's
  # own, the reference). docs/metrics.md says where they agree bit for bit.
  config.eval.dci_classifier = 'fast'
  # Encode each factor combination once and look codes up, where that gives
  # the same codes (mean representation, deterministic rendering) and is
  # cheaper: dSprites' 737,280 combinations instead of ~2.9M drawn images.
  config.eval.code_table = True
  # The metrics to compute: names of bvae_jax/metrics, or ('all',) for every
  # one, in the suite's order (resolved when the run starts).
  config.eval.metrics = ('all',)
  return config


def set_objective(config: ml_collections.ConfigDict, name: str) -> None:
  """Makes `name` (a module of bvae_jax/objectives) the config's objective.

  Fields of the objective the config lacks get the objective's defaults when
  the run starts (experiment_config.resolve); a config that sets them (or
  lets the command line override them) sets them here too.
  """
  config.objective = name


def objective_config(arg: str | None, objective: str,
                     **fields: Any) -> ml_collections.ConfigDict:
  """A single-run config of `objective`: the shape of most files in configs/.

  Args:
    arg: the config argument, e.g. 'quick', 'dataset=chairs' or both.
    objective: a module of bvae_jax/objectives.
    **fields: the experiment's values, e.g. beta=4.0.

  Returns:
    base_config() on the argument's data set (default dSprites) with the
    objective and `fields` set, and the `:quick` budget if asked for.
  """
  args = parse_arg(arg, quick=False, dataset='dsprites')
  config = base_config()
  set_dataset(config, args.dataset)
  set_objective(config, objective)
  config.update(fields)
  if args.quick:
    set_quick_budget(config)
  return config


def set_quick_budget(config: ml_collections.ConfigDict) -> None:
  """The `:quick` budget of the single-run configs: 5,000 steps on a CPU."""
  config.num_train_steps = 5_000
  config.checkpoint_every_steps = 1_000
  config.figure_every_steps = 2_500


def set_capacity_schedule(config: ml_collections.ConfigDict) -> None:
  """Burgess et al. (2018) Sec. 5: γ = 1000, C from 0 over 100k of 300k steps.

  C_max stays the data set's (DATASET_SETTINGS). 300,000 steps is the budget
  disentanglement_lib gives its AnnealedVAE runs (the paper states none).
  """
  set_objective(config, 'capacity')
  config.gamma = 1000.0
  config.capacity_start = 0.0
  config.capacity_anneal_steps = 100_000
  config.num_train_steps = 300_000


def sweep_block(*, seeds, grid, plot_metric='kl_total',
                shared_batches=True, member_devices=0, member_layout='auto',
                evaluate=True) -> ml_collections.ConfigDict:
  """The `sweep` block of a sweep config (bvae_jax/sweeps/sweep.py).

  Args:
    seeds: the seeds; each grid point trains once per seed.
    grid: {hyperparameter: values}; members are the Cartesian product.
    plot_metric: the column of sweep_results.csv plotted against the first
      swept field ('kl_total', 'reconstruction', or e.g. 'mig.discrete_mig').
    shared_batches: members see the same batches (True) or each its own.
    member_devices: devices along the member axis; 0: automatic.
    member_layout: how the members run: 'vmap' (batched), 'map' (member
      groups batched, each group's members one after another in one
      program), 'loop' (one compiled step per member, each over every
      device) or 'auto' (by backend and member count:
      sweep.resolve_member_layout).
    evaluate: run config.eval.metrics on every member at the end.
  """
  return ml_collections.ConfigDict({
      'seeds': tuple(seeds),
      'grid': {field: tuple(float(v) for v in values)
               for field, values in grid.items()},
      'plot_metric': plot_metric,
      'shared_batches': shared_batches,
      'member_devices': member_devices,
      'member_layout': member_layout,
      'evaluate': evaluate,
  })


def set_dataset(config: ml_collections.ConfigDict, name: str) -> None:
  """Points `config` at data set `name`.

  The fields that data set decides (DATASET_FIELDS: channels, latents, C_max;
  for 'name/tiny', those of 'name') become None here and take the data set's
  values when the run starts (experiment_config.resolve), unless set, e.g. on
  the command line (`--config.latent_dim=6`).
  """
  config.dataset = name
  for field, kind in (('num_channels', int), ('latent_dim', int),
                      ('capacity_max', float)):
    config[field] = ml_collections.config_dict.placeholder(kind)


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses a config argument such as 'quick' or 'quick,dataset=foo'.

  Bare words are flags set to True, `key=value` pairs take the type of the
  default given for `key` (big_vision's `configs/common.py` convention).

  Args:
    arg: the text after ':' in `--config=configs/capacity.py:quick`, or None.
    **defaults: the known keys with their default values.

  Returns:
    A ConfigDict with one entry per known key.

  Raises:
    ValueError: for an unknown key, naming the known ones.
  """
  parsed = ml_collections.ConfigDict(defaults)
  for token in (arg or '').split(','):
    token = token.strip()
    if not token:
      continue
    key, has_value, value = token.partition('=')
    if key not in defaults:
      raise ValueError(f'Unknown config argument {key!r}; known: '
                       f'{sorted(defaults)}')
    if not has_value:
      parsed[key] = True
    elif isinstance(defaults[key], bool):
      parsed[key] = value.lower() in ('1', 'true', 'yes')
    else:
      parsed[key] = type(defaults[key])(value)
  return parsed
