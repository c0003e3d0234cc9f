"""Bookkeeping shared by the training loops of one run (train.py) and of sweeps.

Opening the training data with its source resolved, resuming from the newest
checkpoint that restores (or starting afresh), the rule that a run resumes
only on records of the source it was trained on, and the run's JSON records
(written atomically; a resumed run adds `config_resumed_<step>.json` instead of
overwriting `config.json`).
"""

import contextlib
import fcntl
import json
import os
import socket
import time
from typing import Any, Callable, Iterator, Mapping

from absl import logging
import ml_collections
import orbax.checkpoint as ocp

from bvae_jax.core import checkpointing
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


# The lock file of a workdir (workdir_lock); its text names the holder.
LOCK_FILE = '.lock'

# The workdirs this process holds locked: {lock path: [fd, depth]}. Process
# state by nature (an OS lock belongs to the process), so that a run that
# evaluates into its own workdir does not lock itself out.
_held_locks: dict[str, list[int]] = {}


class WorkdirInUseError(RuntimeError):
  """Another process is running in the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str, enabled: bool = True,
                 create: bool = True) -> Iterator[None]:
  """Holds an exclusive lock on `workdir` while the block runs.

  One writer per workdir: a second run (train, sweep, evaluate) on the same
  workdir is refused at once, before it reads or writes anything there. The
  lock is the OS's (`flock` on workdir/.lock), so it goes with the process
  that holds it: a run killed by SIGKILL or a crash never blocks the next
  one. The lock file stays; its text names the last holder. Re-entrant
  within a process. Shared file systems must support flock (NFSv4 and
  Lustre do; some NFSv3 mounts do not).

  Args:
    workdir: created if missing.
    enabled: False holds nothing (processes other than 0 of a multi-process
      job: process 0 locks for the job).
    create: False leaves a missing workdir missing, and unlocked (evaluating
      a run that is not there fails on its own, naming it).

  Raises:
    WorkdirInUseError: naming the workdir and the process that holds it.
  """
  check_workdir(workdir)
  if not enabled or (not create and not os.path.isdir(workdir)):
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(os.path.realpath(workdir), LOCK_FILE)
  if path in _held_locks:
    _held_locks[path][1] += 1
    try:
      yield
    finally:
      _held_locks[path][1] -= 1
    return
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.pread(fd, 1000, 0).decode(errors='replace').strip()
    os.close(fd)
    raise WorkdirInUseError(
        f'{workdir} is in use by another run ({holder or "holder unknown"}). '
        'Wait for it to finish or stop it, or use another --workdir; the '
        'lock goes with that process.') from None
  os.ftruncate(fd, 0)
  os.pwrite(fd, (f'pid {os.getpid()} on {socket.gethostname()}, since '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n').encode(), 0)
  _held_locks[path] = [fd, 1]
  try:
    yield
  finally:
    del _held_locks[path]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def open_training_data(config: ml_collections.ConfigDict
                       ) -> tuple[registry.Dataset, ml_collections.ConfigDict]:
  """Opens the configured data set; returns it and the config to save.

  The saved config has `dataset_source` resolved ('real' or 'procedural'), so
  evaluating or resuming the run reads the same records.

  The config's channels are checked against the data set's images by
  `experiment_config.validate_config`, before anything is opened.
  """
  dataset = registry.open_dataset(config.dataset, config.dataset_source,
                                  config.data_dir)
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
