"""Training objectives, one module each, found by name: `objectives.get(name)`.

An objective module of this package defines

* `HYPERPARAMETERS`: the numeric config fields it reads. They enter the train
  step as traced float32 scalars (one compiled step serves every value) and
  are what a sweep may vary. The step always adds `learning_rate` and
  `gaussian_stddev` (SHARED_HYPERPARAMETERS).
* `STATIC_FIELDS`: string config fields that change its computation (the step
  always adds `likelihood`).
* `CONFIG_DEFAULTS`: {field: default} for the fields it needs that
  `config_defaults.base_config` lacks; `config_defaults.set_objective`
  adds them.
* `validate(config)`: raises ValueError naming a bad field.
* `loss(outputs, images, step, hparams, static) -> (loss, terms)`: a pure
  function of the model's outputs (`models.VAEOutput`), the batch, the step
  (an int32 scalar) and the two dicts above; `terms` are batch statistics by
  name (`loss`, `reconstruction`, `kl_total`, `kl_per_latent`, and the
  objective's own), which reach the logs and sweep tables under those names.

An objective with state of its own (FactorVAE's discriminator and its
optimiser) also defines

* `init_auxiliary(latent_dim, key)`: that state at step 0;
* `update_auxiliary(auxiliary, z, key, hparams, static) -> (auxiliary,
  terms)`: its update from the step's posterior samples z (no gradient to
  the VAE);

and its `loss` takes the state as a sixth argument. The step then carries
the state in `step.AuxiliaryTrainState.auxiliary`.

Adding an objective is adding a module here, a config and tests
(docs/extending.md).
"""

import functools
import importlib
import pkgutil
from types import ModuleType

# Fields every objective's step reads besides its own HYPERPARAMETERS.
SHARED_HYPERPARAMETERS = ('learning_rate', 'gaussian_stddev')
SHARED_STATIC_FIELDS = ('likelihood',)
# Modules of this package that are building blocks, not objectives.
_BUILDING_BLOCKS = ('elbo', 'gaussians', 'likelihoods')


@functools.cache  # The package's modules do not change while it runs.
def names() -> tuple[str, ...]:
  """The objectives of this package, sorted."""
  return tuple(sorted(
      module.name for module in pkgutil.iter_modules(__path__)
      if module.name not in _BUILDING_BLOCKS and not module.name.startswith('_')))


def get(name: str) -> ModuleType:
  """The objective module `name`.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if name not in names():
    raise ValueError(f'config.objective must be one of {names()}, got {name!r}')
  return importlib.import_module(f'{__name__}.{name}')


def require_nonnegative(config, *fields: str) -> None:
  """Raises ValueError naming the first of `fields` that is negative."""
  for field in fields:
    if config[field] < 0:
      raise ValueError(f'config.{field} must be ≥ 0, got {config[field]!r}')
