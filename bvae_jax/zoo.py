"""The model zoo: trained parameters committed with a card that says what they are.

Each model is a folder `zoo/<name>/` at the repository root holding
`params.msgpack` (the final parameters only, no optimiser state:
`flax.serialization.msgpack_serialize` of the params tree, ~2 MB) and
`card.json`: the training config, data source, steps, seed, commit, wall
time, the metrics at every evaluated step, KL and input-dependent KL per
latent, reconstruction NLL, the command that trained it, and `check`: metrics
on a small fixed subset that a test recomputes.

  from bvae_jax import zoo
  zoo.list_models()                        # ['study50k_beta_vae_s0', ...]
  model, params, config = zoo.load('study50k_beta_vae_s0')
  mean, log_var = model.apply({'params': params}, images, method=model.encode)

`python -m bvae_jax.main --mode=evaluate --zoo=NAME --workdir=DIR` runs the
metric suite on a zoo model (its card's config and sample sizes) and writes
DIR/eval/metrics_<step>.json, which equals the card's `metrics[<step>]`.
"""

import dataclasses
import hashlib
import json
import os
from typing import Any

import flax.serialization
import jax
import ml_collections
import numpy as np

from bvae_jax import config_defaults
from bvae_jax.core import step as step_lib

# zoo/ at the repository root, beside bvae_jax/.
ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'zoo')
PARAMS_FILE = 'params.msgpack'
CARD_FILE = 'card.json'
# Fields every card has (validate_card).
CARD_FIELDS = ('name', 'command', 'config', 'dataset', 'seed', 'steps',
               'commit', 'wall_time_seconds', 'images_per_sec', 'metrics',
               'kl_per_latent', 'kl_input_dependent_per_latent',
               'active_latents', 'informative_latents', 'reconstruction_nll',
               'params_sha256', 'check')
# The small fixed evaluation of `check`: cheap enough for a test.
CHECK_EVAL = {'num_train': 1000, 'num_test': 500, 'num_variance_estimate': 1000,
              'metrics': ('mig', 'modularity_explicitness', 'sap')}


class ZooError(ValueError):
  """A zoo model that is missing, or whose files do not match its card."""


@dataclasses.dataclass
class ZooModel:
  """A loaded zoo model."""
  model: Any  # models.VAE
  params: Any
  config: ml_collections.ConfigDict
  card: dict


def list_models(zoo_dir: str = ZOO_DIR) -> list[str]:
  """Names of the models in `zoo_dir` (folders holding a card), sorted."""
  if not os.path.isdir(zoo_dir):
    return []
  return sorted(name for name in os.listdir(zoo_dir)
                if os.path.isfile(os.path.join(zoo_dir, name, CARD_FILE)))


def read_card(name: str, zoo_dir: str = ZOO_DIR) -> dict:
  """The card of model `name`.

  Raises:
    ZooError: no such model (the message lists the known ones).
  """
  path = os.path.join(zoo_dir, name, CARD_FILE)
  if not os.path.isfile(path):
    raise ZooError(f'No zoo model {name!r}: {path} does not exist. Known: '
                   f'{list_models(zoo_dir) or "none"}')
  with open(path) as f:
    return json.load(f)


def config_of(card: dict) -> ml_collections.ConfigDict:
  """The training config of a card, as a ConfigDict (lists back to tuples).

  Fields added to the project after the model was trained (a card's config
  lacks them) take base_config()'s defaults, so old cards keep loading.
  """
  def tuples(value):
    if isinstance(value, dict):
      return {key: tuples(entry) for key, entry in value.items()}
    if isinstance(value, list):
      return tuple(tuples(entry) for entry in value)
    return value
  config = config_defaults.base_config()
  config.update(tuples(card['config']))
  return config


def validate_card(card: dict, name: str) -> None:
  """Checks a card's fields and their consistency.

  Raises:
    ZooError: naming the model and the first problem.
  """
  missing = [field for field in CARD_FIELDS if field not in card]
  if missing:
    raise ZooError(f'zoo/{name}/{CARD_FILE} lacks {missing}')
  if card['name'] != name:
    raise ZooError(f'zoo/{name}/{CARD_FILE} names itself {card["name"]!r}')
  latents = card['config']['latent_dim']
  for field in ('kl_per_latent', 'kl_input_dependent_per_latent'):
    if len(card[field]) != latents:
      raise ZooError(f'zoo/{name}/{CARD_FILE}: {field} has '
                     f'{len(card[field])} entries for {latents} latents')
  if str(card['steps']) not in card['metrics']:
    raise ZooError(f'zoo/{name}/{CARD_FILE}: no metrics at its final step '
                   f'{card["steps"]} (has {sorted(card["metrics"])})')


def params_digest(data: bytes) -> str:
  """sha256 of a params file's bytes."""
  return hashlib.sha256(data).hexdigest()


def load(name: str, zoo_dir: str = ZOO_DIR) -> ZooModel:
  """Loads zoo model `name`: (model, params, config, card).

  Raises:
    ZooError: the model is missing, its card is incomplete, or its params
      file does not match the card's digest or the config's architecture.
  """
  card = read_card(name, zoo_dir)
  validate_card(card, name)
  path = os.path.join(zoo_dir, name, PARAMS_FILE)
  if not os.path.isfile(path):
    raise ZooError(f'zoo/{name}: {path} does not exist')
  with open(path, 'rb') as f:
    data = f.read()
  if params_digest(data) != card['params_sha256']:
    raise ZooError(f'{path} does not match the sha256 in its card (damaged '
                   'or replaced); restore it with git checkout')
  params = flax.serialization.msgpack_restore(data)
  config = config_of(card)
  model = step_lib.create_model(config)
  expected = jax.eval_shape(
      lambda: model.init(jax.random.key(0), np.zeros(
          (1,) + step_lib.image_shape(config.num_channels), np.float32),
                         jax.random.key(1))['params'])
  got_shapes = jax.tree.map(np.shape, params)
  expected_shapes = jax.tree.map(lambda leaf: leaf.shape, expected)
  if got_shapes != expected_shapes:
    raise ZooError(f'{path} does not fit the architecture of its card\'s '
                   f'config: {got_shapes} against {expected_shapes}')
  return ZooModel(model=model, params=jax.tree.map(np.asarray, params),
                  config=config, card=card)


def save(name: str, params: Any, card: dict, zoo_dir: str = ZOO_DIR) -> str:
  """Writes zoo/<name>/ (params and card, with the params' digest).

  Returns:
    The model's folder.
  """
  folder = os.path.join(zoo_dir, name)
  os.makedirs(folder, exist_ok=True)
  data = flax.serialization.msgpack_serialize(
      jax.tree.map(lambda leaf: np.asarray(leaf, np.float32),
                   jax.device_get(params)))
  with open(os.path.join(folder, PARAMS_FILE), 'wb') as f:
    f.write(data)
  card = {**card, 'name': name, 'params_sha256': params_digest(data)}
  validate_card(card, name)
  with open(os.path.join(folder, CARD_FILE), 'w') as f:
    json.dump(card, f, indent=2, sort_keys=True)
  return folder


def check_config(config: ml_collections.ConfigDict
                 ) -> ml_collections.ConfigDict:
  """`config` with the small fixed evaluation of a card's `check`."""
  config = config.copy_and_resolve_references()
  for field, value in CHECK_EVAL.items():
    config.eval[field] = value
  return config
