"""Bookkeeping shared by the training loops of one run (train.py) and of sweeps.

Opening the training data with its source resolved, resuming from the newest
checkpoint that restores (or starting afresh), the rule that a run resumes
only on records of the source it was trained on, and the run's JSON records
(written atomically; a resumed run adds `config_resumed_<step>.json` instead of
overwriting `config.json`).
"""

import json
import os
from typing import Any, Callable, Mapping

from absl import logging
import ml_collections
import orbax.checkpoint as ocp

from bvae_jax import checkpointing
from bvae_jax.datasets import registry


def check_workdir(workdir: str) -> None:
  """Refuses a workdir that exists but is not a directory, before any work.

  Raises:
    NotADirectoryError: naming it.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(
        f'--workdir {workdir} is a file, not a directory. Give a directory '
        '(it is created if missing) for the checkpoints, logs and figures.')


def open_training_data(config: ml_collections.ConfigDict
                       ) -> tuple[registry.Dataset, ml_collections.ConfigDict]:
  """Opens the configured data set; returns it and the config to save.

  The saved config has `dataset_source` resolved ('real' or 'procedural'), so
  evaluating or resuming the run reads the same records.

  The config's channels are checked against the data set's images by
  `experiment_config.validate_config`, before anything is opened.
  """
  dataset = registry.open_dataset(config)
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


def data_source_as_trained(config: ml_collections.ConfigDict,
                           stored_config: Mapping[str, Any]
                           ) -> ml_collections.ConfigDict:
  """A copy of `config` that reads the records the checkpoint was trained on.

  The one rule for evaluating or restoring a checkpoint: a config left at
  `dataset_source='auto'` takes the source stored with the checkpoint; a
  source the user set is kept, with a warning when it differs.
  """
  config = config.copy_and_resolve_references()
  stored = stored_config.get('dataset_source')
  if stored not in ('real', 'procedural'):
    return config
  if config.dataset_source == 'auto':
    config.dataset_source = stored
  elif config.dataset_source != stored:
    logging.warning('The checkpoint was trained on %s %s data; reading %s '
                    'data as config.dataset_source asks.', stored,
                    config.dataset, config.dataset_source)
  return config


def write_json(path: str, value: Any) -> None:
  """Writes `value` as JSON to `path` atomically (a crash leaves old or new)."""
  temporary = f'{path}.tmp'
  with open(temporary, 'w') as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(temporary, path)


def write_config_json(directory: str, config: ml_collections.ConfigDict,
                      start_step: int) -> None:
  """Records the config of this run: config.json at step 0, else
  config_resumed_<start_step>.json; an existing file is never overwritten."""
  name = 'config.json' if start_step == 0 else f'config_resumed_{start_step}.json'
  path = os.path.join(directory, name)
  if not os.path.exists(path):
    write_json(path, config.to_dict())


def write_dataset_json(workdir: str, dataset: registry.Dataset) -> None:
  """Records the data set's source, size and shape in workdir/dataset.json."""
  write_json(os.path.join(workdir, 'dataset.json'), dataset.describe())


def resume_or_init(manager: ocp.CheckpointManager, workdir: str,
                   abstract_state: Any, config: ml_collections.ConfigDict,
                   init_fn: Callable[[], Any]) -> Any:
  """The state to train from: the newest checkpoint that restores, or init_fn().

  Raises:
    ValueError: the checkpoint was trained on another data source.
    checkpointing.CheckpointMismatchError, DamagedCheckpointsError: see
      checkpointing.restore_latest.
  """
  restored = checkpointing.restore_latest(manager, workdir, abstract_state)
  if restored is None:
    return init_fn()
  state, stored_config, step = restored
  check_same_data_source(stored_config, config, workdir)
  logging.info('Resuming from step %d (checkpoint in %s).', step,
               checkpointing.checkpoint_dir(workdir))
  return state
