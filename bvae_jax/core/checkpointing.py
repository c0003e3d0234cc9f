"""Orbax checkpoints of the training state, with the run's config beside it.

Each checkpoint step directory holds two items: `state` (the TrainState pytree,
`StandardSave`) and `config` (the ConfigDict as JSON), so evaluation can
rebuild the model from the checkpoint alone. Before restoring, the stored
parameter shapes are compared with the model the config builds, so a workdir
holding another architecture fails with a message naming the differences
instead of a TensorStore error deep inside Orbax.
"""

import os
import shutil
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

_STATE = 'state'
_CONFIG = 'config'


class CheckpointMismatchError(ValueError):
  """The checkpoint in a workdir does not fit the configured model."""


class DamagedCheckpointsError(RuntimeError):
  """No checkpoint of a workdir could be restored."""


class CheckpointSaveError(RuntimeError):
  """A checkpoint could not be written (no space, no permission, …)."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def damaged_dir(workdir: str) -> str:
  """Where checkpoints that fail to restore are moved (never deleted)."""
  return os.path.join(os.path.abspath(workdir), 'checkpoints_damaged')


def all_steps(workdir: str) -> list[int]:
  """The checkpoint steps of `workdir`, ascending, as Orbax lists them."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return []
  manager = ocp.CheckpointManager(
      checkpoint_dir(workdir),
      options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  return sorted(manager.all_steps())


def create_manager(workdir: str, max_to_keep: int | None = None,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """The CheckpointManager of `workdir/checkpoints`.

  Args:
    workdir: the run's working directory.
    max_to_keep: checkpoints kept when saving (config.max_checkpoints_to_keep);
      None: all.
    read_only: open without creating directories or deleting anything
      (evaluation, inspection).
  """
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=not read_only, read_only=read_only)
  return ocp.CheckpointManager(
      checkpoint_dir(workdir), options=options,
      item_handlers={_STATE: ocp.StandardCheckpointHandler(),
                     _CONFIG: ocp.JsonCheckpointHandler()})


def _save_error(manager: ocp.CheckpointManager,
                error: BaseException) -> CheckpointSaveError:
  directory = str(manager.directory)
  # A fresh listing from disk: the failed step is a `<step>.orbax-checkpoint-
  # tmp` folder, which Orbax neither lists nor restores.
  steps = all_steps(os.path.dirname(directory))
  kept = (f'The checkpoints saved before it are intact (steps '
          f'{", ".join(map(str, steps))}): free space or fix the permissions '
          f'and rerun the same command; it resumes from step {steps[-1]}.'
          if steps else 'No checkpoint was saved before it: free space or fix '
          'the permissions and rerun the same command; it starts again.')
  return CheckpointSaveError(
      f'Saving a checkpoint in {directory} failed: {error}\n{kept}')


def check_saves(manager: ocp.CheckpointManager) -> None:
  """Raises at once if an earlier asynchronous save has failed.

  Saves run in background threads, so a full disk would otherwise surface
  only at the next save or the end of the run, after training on.

  Raises:
    CheckpointSaveError: naming the directory, the error (Orbax's names the
      file and the OS error) and the checkpoints that are intact.
  """
  try:
    manager.check_for_errors()
  except Exception as error:  # pylint: disable=broad-except
    raise _save_error(manager, error) from error


def finish_saves(manager: ocp.CheckpointManager) -> None:
  """Waits for the saves in flight; raises as check_saves if one failed."""
  try:
    manager.wait_until_finished()
  except Exception as error:  # pylint: disable=broad-except
    raise _save_error(manager, error) from error


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         config_json: Mapping[str, Any]) -> None:
  """Saves `state` and the run's config at `step` (asynchronously:
  finish_saves).

  Args:
    manager: from `create_manager`.
    step: the step the state has trained.
    state: the pytree to save.
    config_json: the run's config as JSON data (`config.to_dict()`), which
      `restore_step` returns beside the state.

  Raises:
    CheckpointSaveError: an earlier save failed (check_saves), or this one
      could not start.
  """
  check_saves(manager)
  try:
    manager.save(step, args=ocp.args.Composite(**{
        _STATE: ocp.args.StandardSave(state),
        _CONFIG: ocp.args.JsonSave(dict(config_json)),
    }), force=True)
  except (OSError, ValueError) as error:  # TensorStore's write errors.
    raise _save_error(manager, error) from error
  logging.info('Saving checkpoint %d in %s.', step, manager.directory)


def _key_name(key: Any) -> str:
  for attribute in ('key', 'idx', 'name'):  # DictKey, SequenceKey, GetAttrKey.
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{'params/encoder/Dense_0/kernel': shape, …}, whatever the container types.

  Orbax stores dataclasses and named tuples as dicts and tuples as lists, so
  paths are compared by their key names alone.
  """
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {'/'.join(_key_name(key) for key in path): tuple(np.shape(leaf))
          for path, leaf in flat}


def check_compatible(manager: ocp.CheckpointManager, step: int,
                     abstract_state: Any) -> None:
  """Raises CheckpointMismatchError unless the stored state fits `abstract_state`.

  Args:
    manager: the manager of the workdir.
    step: the checkpoint step to check.
    abstract_state: the state the current config builds (shapes only, e.g.
      from `jax.eval_shape`).
  """
  stored_tree = manager.item_metadata(step)[_STATE]
  stored_tree = getattr(stored_tree, 'tree', stored_tree)
  stored = _leaf_shapes(stored_tree)
  expected = _leaf_shapes(abstract_state)
  problems = []
  for name in sorted(set(stored) | set(expected)):
    if name not in stored:
      problems.append(f'  {name}: missing from the checkpoint, model has '
                      f'{expected[name]}')
    elif name not in expected:
      problems.append(f'  {name}: in the checkpoint {stored[name]}, not in the '
                      'model')
    elif stored[name] != expected[name]:
      problems.append(f'  {name}: checkpoint {stored[name]} vs model '
                      f'{expected[name]}')
  if problems:
    stored_config = restore_config(manager, step)
    hint = ''
    if stored_config:
      hint = ('\nThe checkpoint was written with ' + ', '.join(
          f'{key}={stored_config.get(key)!r}'
          for key in ('latent_dim', 'num_channels', 'objective', 'dataset')) +
              '.')
    raise CheckpointMismatchError(
        f'The checkpoint at {os.path.join(str(manager.directory), str(step))} '
        'does not fit the configured model (different architecture). '
        f'Differences:\n' + '\n'.join(problems[:20]) + hint +
        '\nUse a fresh --workdir, or the config the checkpoint was written with.')


def restore_config(manager: ocp.CheckpointManager, step: int) -> dict:
  """The config saved with the checkpoint at `step` (a plain dict)."""
  return manager.restore(step, args=ocp.args.Composite(
      **{_CONFIG: ocp.args.JsonRestore()}))[_CONFIG]


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any
            ) -> tuple[Any, dict]:
  """Restores (state, config dict) at `step` after checking compatibility.

  Args:
    manager: the manager of the workdir.
    step: the checkpoint step.
    abstract_state: a pytree of jax.ShapeDtypeStruct (with shardings) that the
      restored arrays take.

  Returns:
    The restored state and the config it was saved with (a plain dict).
  """
  check_compatible(manager, step, abstract_state)
  restored = manager.restore(step, args=ocp.args.Composite(**{
      _STATE: ocp.args.StandardRestore(abstract_state),
      _CONFIG: ocp.args.JsonRestore(),
  }))
  return restored[_STATE], restored[_CONFIG]


def restore_step(manager: ocp.CheckpointManager, step: int,
                 abstract_state: Any) -> tuple[Any, dict]:
  """`restore` of one chosen step (evaluation), read-only.

  Raises:
    CheckpointMismatchError: as `restore`.
    DamagedCheckpointsError: the checkpoint does not restore; names it, the
      error and the steps that do restore.
  """
  try:
    return restore(manager, step, abstract_state)
  except CheckpointMismatchError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    # Orbax raises many types for a damaged file (see restore_latest).
    path = os.path.join(str(manager.directory), str(step))
    restorable = []
    for other in sorted(manager.all_steps()):
      if other == step:
        continue
      try:
        restore(manager, other, abstract_state)
        restorable.append(other)
      except Exception:  # pylint: disable=broad-except
        pass
    raise DamagedCheckpointsError(
        f'The checkpoint {path} does not restore ({type(error).__name__}: '
        f'{str(error)[:300]}). '
        + (f'Steps that restore: {restorable}; pick one with --step=N.'
           if restorable else 'No other checkpoint there restores either.')
    ) from error


def _files(directory: str) -> list[str]:
  return sorted(os.path.relpath(os.path.join(root, name), directory)
                for root, _, names in os.walk(directory) for name in names)


def restore_latest(manager: ocp.CheckpointManager, workdir: str,
                   abstract_state: Any) -> tuple[Any, dict, int] | None:
  """Restores the newest checkpoint that restores; None when there is none.

  A checkpoint that fails to restore (a truncated or emptied file, say) is
  moved to `damaged_dir(workdir)` with a warning naming it and the error, and
  the next older one is tried; training then resumes from there and can write
  the damaged step again.

  Returns:
    (state, config dict, step), or None if the workdir has no checkpoint.

  Raises:
    CheckpointMismatchError: the checkpoint is of another architecture (not
      damage: nothing is moved).
    DamagedCheckpointsError: no checkpoint restores; names each one's files
      and error.
  """
  failures = []
  for step in sorted(manager.all_steps(), reverse=True):
    path = os.path.join(str(manager.directory), str(step))
    try:
      state, config = restore(manager, step, abstract_state)
    except CheckpointMismatchError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      # Orbax raises many types for a damaged file (ValueError for bad JSON,
      # TensorStore errors, FileNotFoundError): any failure to read counts.
      failures.append((step, path, _files(path), error))
      logging.warning('Checkpoint %s does not restore (%s: %s); trying the '
                      'one before.', path, type(error).__name__, error)
      continue
    for _, damaged_path, _, _ in failures:
      destination = os.path.join(damaged_dir(workdir),
                                 os.path.basename(damaged_path))
      if jax.process_index() == 0:  # The workdir is shared by all processes.
        os.makedirs(damaged_dir(workdir), exist_ok=True)
        shutil.move(damaged_path, destination)
      logging.warning('Moved the damaged checkpoint %s to %s (kept, not '
                      'deleted); resuming from step %d.', damaged_path,
                      destination, step)
    if failures:
      manager.reload()
    return state, config, step
  if failures:
    raise DamagedCheckpointsError(
        f'No checkpoint in {checkpoint_dir(workdir)} restores:\n' + '\n'.join(
            f'  step {step} ({path}; files {files}): '
            f'{type(error).__name__}: {str(error)[:300]}'
            for step, path, files, error in failures) +
        '\nRepair or remove them, or use a fresh --workdir.')
  return None
