"""Resolving a config when a run starts, and validating it.

Config files are plain data (bvae_jax/config_defaults.py: they import
ml_collections only). `resolve` turns one into the config a run uses: the
data set's settings for the fields the config left to it, the objective's
defaults for fields the config lacks, the metric list `('all',)` spelled out,
and every value checked (`validate_config`, naming the field). main.py calls
it where a run starts, and so do the library's entry points a notebook calls
(train.train_and_evaluate, sweep.train_sweep, evaluate.evaluate); resolving
a resolved config changes nothing. The resolved config is what a run writes
to config.json.
"""

from typing import Any

import ml_collections

from bvae_jax.datasets import registry
from bvae_jax import metrics
from bvae_jax.models import conv_layers
from bvae_jax.models import vae
from bvae_jax import objectives
from bvae_jax.objectives import likelihoods

# Every metric of bvae_jax/metrics, in the order the suite computes them.
EVAL_METRICS = metrics.names()

# What each data set sets in a config, by family name (a view of the specs
# in datasets/registry.py; each spec's module says where its values come
# from). Burgess et al. (2018) use a Bernoulli decoder on every data set,
# reading grey levels and colours in [0, 1] as Bernoulli means, as
# disentanglement_lib does for all its data sets; we keep it, so no data set
# sets `likelihood`.
DATASET_SETTINGS = {spec.name: spec.config_updates() for spec in registry.SPECS}

# config.eval.metrics that stands for every metric.
ALL_METRICS = ('all',)


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config a run uses: names resolved, defaults filled in, validated.

  Args:
    config: a config from configs/ (or one resolved before); not changed.

  Returns:
    A new, unlocked ConfigDict: the data set's value for each of
    config_defaults.DATASET_FIELDS left None, the objective's CONFIG_DEFAULTS
    for its fields the config lacks, and eval.metrics ('all',) as every
    metric's name.

  Raises:
    ValueError: an unknown data set or objective (listing the known ones), or
      a bad value (validate_config, naming the field).
  """
  config = config.copy_and_resolve_references()
  config.unlock()
  _require(config.dataset in registry.DATASET_NAMES, 'dataset',
           f'must be one of {registry.DATASET_NAMES}', config.dataset)
  for field, value in registry.get_spec(config.dataset).config_updates().items():
    if config.get(field) is None:
      config[field] = value
  _require(config.objective in objectives.names(), 'objective',
           f'must be one of {objectives.names()}', config.objective)
  for field, default in objectives.get(config.objective).CONFIG_DEFAULTS.items():
    if field not in config:
      config[field] = default
  if tuple(config.eval.metrics) == ALL_METRICS:
    config.eval.metrics = EVAL_METRICS
  validate_config(config)
  return config


def _require(condition: bool, field: str, message: str, value: Any) -> None:
  if not condition:
    raise ValueError(f'config.{field} {message}, got {value!r}')


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks value ranges that the types of the fields cannot express.

  Args:
    config: a full training config.

  Raises:
    ValueError: naming the first offending field and its value.
  """
  objective = objectives.get(config.objective)
  for field in objective.HYPERPARAMETERS + objective.STATIC_FIELDS:
    _require(field in config, field,
             f'is read by objective {config.objective!r}; configs set it with '
             'config_defaults.set_objective', 'missing')
  objective.validate(config)
  _require(config.likelihood in likelihoods.LIKELIHOODS, 'likelihood',
           f'must be one of {likelihoods.LIKELIHOODS}', config.likelihood)
  _require(config.gaussian_stddev > 0, 'gaussian_stddev', 'must be > 0',
           config.gaussian_stddev)
  _require(config.learning_rate > 0, 'learning_rate', 'must be > 0',
           config.learning_rate)
  for field in ('latent_dim', 'batch_size', 'num_train_steps', 'log_every_steps',
                'checkpoint_every_steps', 'figure_every_steps',
                'max_checkpoints_to_keep', 'num_figure_images', 'traversal_steps'):
    _require(config[field] > 0, field, 'must be > 0', config[field])
  _require(config.conv_impl in conv_layers.CONV_IMPLS, 'conv_impl',
           f'must be one of {conv_layers.CONV_IMPLS}', config.conv_impl)
  _require(config.num_channels in (1, 3), 'num_channels', 'must be 1 or 3',
           config.num_channels)
  _require(config.traversal_range > 0, 'traversal_range', 'must be > 0',
           config.traversal_range)
  _require(config.train_subset_size >= 0, 'train_subset_size', 'must be ≥ 0',
           config.train_subset_size)
  _require(isinstance(config.data_on_device, bool), 'data_on_device',
           'must be True or False', config.data_on_device)
  _require(config.data_seed is None or config.data_seed >= 0, 'data_seed',
           'must be ≥ 0 or None', config.data_seed)
  _require(config.eval_every_steps >= 0, 'eval_every_steps', 'must be ≥ 0',
           config.eval_every_steps)
  _require(all(isinstance(s, int) and 0 < s <= config.num_train_steps
               for s in config.eval_at_steps), 'eval_at_steps',
           f'must be steps in [1, num_train_steps={config.num_train_steps}]',
           config.eval_at_steps)
  for field in ('num_train', 'num_test', 'batch_size', 'num_variance_estimate',
                'num_bins', 'encode_batch_size'):
    _require(config.eval[field] > 0, f'eval.{field}', 'must be > 0',
             config.eval[field])
  # `--config.eval.metrics=mig,sap` parses as the 1-tuple ('mig,sap',).
  hint = ('; on the command line write --config.eval.metrics="(\'mig\', '
          '\'sap\')"' if any(',' in str(name) for name in config.eval.metrics)
          else '')
  _require(bool(config.eval.metrics) and set(config.eval.metrics) <= set(
      EVAL_METRICS), 'eval.metrics', f'must name some of {EVAL_METRICS}{hint}',
           config.eval.metrics)
  _require(config.eval.representation in ('mean', 'sampled'),
           'eval.representation', "must be 'mean' or 'sampled'",
           config.eval.representation)
  _require(config.eval.dci_classifier in ('fast', 'sklearn'),
           'eval.dci_classifier', "must be 'fast' or 'sklearn'",
           config.eval.dci_classifier)
  _require(config.eval.conv_impl in conv_layers.CONV_IMPLS, 'eval.conv_impl',
           f'must be one of {conv_layers.CONV_IMPLS}', config.eval.conv_impl)
  _require(config.dataset in registry.DATASET_NAMES, 'dataset',
           f'must be one of {registry.DATASET_NAMES}', config.dataset)
  _require(config.dataset_source in registry.DATASET_SOURCES, 'dataset_source',
           f'must be one of {registry.DATASET_SOURCES}', config.dataset_source)
  spec = registry.get_spec(config.dataset)
  kinds = spec.source_kinds
  _require(config.dataset_source in ('auto',) + kinds, 'dataset_source',
           f"must be 'auto' or {' or '.join(map(repr, kinds))} for data set "
           f'{config.dataset!r}', config.dataset_source)
  # The model reads what the data set holds: (64, 64, num_channels).
  _require(spec.image_shape == (vae.IMAGE_SIZE, vae.IMAGE_SIZE,
                                config.num_channels), 'num_channels',
           f'must be {spec.image_shape[-1]} for data set {config.dataset!r} '
           f'(images {spec.image_shape}; the model takes '
           f'{vae.IMAGE_SIZE}x{vae.IMAGE_SIZE}); use '
           f'--config=configs/<file>.py:dataset={config.dataset}, which sets '
           f'it', config.num_channels)
