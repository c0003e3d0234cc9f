r"""One sweep from seed shards: sweeps trained apart, merged into one workdir.

A sweep can be too long for one job or machine (configs/sweep_beta.py at
its full size, 7 β × 3 seeds, is ~6 hours of training on a 2-core CPU). Train
it as shards that differ only in `config.sweep.seeds`, each in its own workdir
and at its own time, then merge them:

  python -m bvae_jax.main --config=configs/sweep_beta.py --config.sweep.seeds='(0,)' --workdir=DIR/seed0
  python -m bvae_jax.main --config=configs/sweep_beta.py --config.sweep.seeds='(1,)' --workdir=DIR/seed1
  python -m bvae_jax.main --config=configs/sweep_beta.py --config.sweep.seeds='(2,)' --workdir=DIR/seed2
  python -m bvae_jax.main --config=configs/sweep_beta.py --workdir=DIR/all --mode=merge --parts=DIR/seed0,DIR/seed1,DIR/seed2

DIR/all then holds what `sweep.train_sweep` writes for the config's seeds in
one process: one checkpoint of all members stacked in the config's member
order (with the config), `members/<name>/` (each member's TensorBoard run,
figures and evaluation, copied), `sweep_members.json`, `config.json` and
`sweep_results.{csv,md,json}` with the plot. Everything that reads a sweep
(`--mode=evaluate --member=…`, bvae_jax/sweeps/udr_selection.py,
bvae_jax/reproductions/beta_sweep_study.py) reads it as it reads a sweep
trained whole; `merged_from.json` records the parts.

A member trained in a shard computes what it computes in the whole sweep: the
same initialisation and noise (its seed) and, with shared batches, the same
batches (the sweep's data seed, not the member's). Only the floating-point
summation order differs (another member count vmaps another width), so the
logged losses agree to ~1e-6 relative and the parameters drift apart within
Adam's step bound, as between any two layouts (tests/test_sweep_merge.py).

Every part must have finished (its sweep_results.json written, its latest
checkpoint at config.num_train_steps), its seeds must not overlap another
part's, the parts' seeds together must be the config's, and every other field
of each part's stored config must equal the config's, except the ones in
`MAY_DIFFER` (where checkpoints and data files live, how many checkpoints
are kept, how often figures are drawn, the column plotted, the member axis'
device count and member layout), which do not change what is trained; a part
trained before a field existed stores no value for it. That includes the data
source: with dataset_source='auto', every part must have resolved it as the
first did.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Mapping, Sequence

from absl import logging
from flax import traverse_util
import jax
import ml_collections
import numpy as np

from bvae_jax.core import checkpointing
from bvae_jax.core import run_records
from bvae_jax.evaluation import evaluate
from bvae_jax import experiment_config
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report

# Config fields that may differ between parts: none changes what a member
# computes or how its row is measured. sweep.seeds is checked on its own
# (disjoint, covering the config's).
MAY_DIFFER = ('checkpoint_every_steps', 'max_checkpoints_to_keep', 'data_dir',
              'figure_every_steps', 'sweep.member_devices',
              'sweep.member_layout', 'sweep.plot_metric', 'sweep.seeds')
MERGED_FROM_JSON = 'merged_from.json'


@dataclasses.dataclass
class Part:
  """One finished shard of the sweep.

  Attributes:
    workdir: its workdir.
    seeds: its config.sweep.seeds, in its order.
    step: its latest checkpoint step.
    stored_config: the config saved with that checkpoint (a plain dict).
  """
  workdir: str
  seeds: list[int]
  step: int
  stored_config: dict[str, Any]


def _flat(tree: Mapping[str, Any]) -> dict[str, Any]:
  """{'a.b': value}, normalised as JSON stores it (tuples become lists)."""
  return traverse_util.flatten_dict(json.loads(json.dumps(tree)), sep='.')


def config_differences(config: ml_collections.ConfigDict,
                       stored_config: Mapping[str, Any]) -> list[str]:
  """'field: part X vs config Y' for every field outside MAY_DIFFER."""
  wanted = _flat(config.to_dict())
  stored = _flat(stored_config)
  differences = []
  for key in sorted(set(wanted) | set(stored)):
    if key in MAY_DIFFER:
      continue
    if wanted.get(key, '<absent>') != stored.get(key, '<absent>'):
      differences.append(f'{key}: part {stored.get(key, "<absent>")!r} vs '
                         f'config {wanted.get(key, "<absent>")!r}')
  return differences


def read_part(workdir: str) -> Part:
  """The seeds and stored config of the sweep in `workdir`.

  Raises:
    FileNotFoundError: `workdir` does not exist or holds no checkpoint (the
      message lists what it holds).
    ValueError: its checkpoint is not a sweep's.
  """
  step = evaluate.checkpoint_step(workdir)
  manager = checkpointing.create_manager(workdir, read_only=True)
  stored_config = checkpointing.restore_config(manager, step)
  manager.close()
  if not (stored_config.get('sweep') or {}).get('seeds'):
    raise ValueError(f'{workdir} holds a run without a sweep block, not a '
                     'sweep; merge the workdirs of `config.sweep` runs.')
  return Part(workdir=workdir,
              seeds=[int(s) for s in stored_config['sweep']['seeds']],
              step=step, stored_config=stored_config)


def check_part(config: ml_collections.ConfigDict, part: Part) -> None:
  """The part is a finished shard of `config`'s sweep.

  Args:
    config: the whole sweep's config, its data source resolved.
    part: from read_part.

  Raises:
    ValueError: its config differs from `config` outside MAY_DIFFER (every
      field named), or its latest checkpoint is short of num_train_steps.
    FileNotFoundError: it has no sweep_results.json.
  """
  differences = config_differences(config, part.stored_config)
  if differences:
    raise ValueError(f'{part.workdir} was trained with another config than '
                     '--config, so its members are not members of that '
                     'sweep:\n  ' + '\n  '.join(differences))
  if part.step != config.num_train_steps:
    raise ValueError(
        f'The sweep in {part.workdir} has not finished: its latest '
        f'checkpoint is at step {part.step} of {config.num_train_steps} (run its '
        'training command again to resume it).')
  if not os.path.exists(sweep_report.results_path(part.workdir)):
    raise FileNotFoundError(
        f'{sweep_report.results_path(part.workdir)} is missing although the '
        'last step is checkpointed: the sweep stopped before its report '
        '(run its training command again to write it).')


def check_seeds(seeds: Sequence[int], parts: Sequence[Part]) -> None:
  """The parts' seeds are disjoint and together `seeds` (config.sweep.seeds).

  Raises:
    ValueError: naming a seed two parts share, or the seeds missing or extra.
  """
  owner: dict[int, str] = {}
  for part in parts:
    for seed in part.seeds:
      if seed in owner:
        raise ValueError(f'Seed {seed} was trained by both {owner[seed]} and '
                         f'{part.workdir}; each seed must come from one part.')
      owner[seed] = part.workdir
  wanted = {int(s) for s in seeds}
  missing, extra = sorted(wanted - set(owner)), sorted(set(owner) - wanted)
  if missing or extra:
    raise ValueError(
        f'The parts train seeds {sorted(owner)}, config.sweep.seeds is '
        f'{sorted(wanted)}' + (f'; no part has seeds {missing}' if missing
                               else '') +
        (f'; seeds {extra} are not in the config' if extra else '') + '.')


def _with_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int]
                ) -> ml_collections.ConfigDict:
  """`config` with these seeds, its members on whatever devices fit here."""
  copy = ml_collections.ConfigDict(config.to_dict())
  copy.sweep.seeds = tuple(seeds)
  copy.sweep.member_devices = 0
  return copy


def restore_part_state(config: ml_collections.ConfigDict, part: Part
                       ) -> tuple[list[sweep.Member], sweep.SweepState]:
  """The part's members and its final state, on the host."""
  part_config = _with_seeds(config, part.seeds)
  setup = sweep.setup_sweep(part_config)
  manager = checkpointing.create_manager(part.workdir, read_only=True)
  state, _ = checkpointing.restore(manager, config.num_train_steps,
                                   setup.abstract_state)
  manager.close()
  return setup.members, jax.tree.map(sweep.host_array, state)


def merge_states(members: Sequence[sweep.Member],
                 parts: Sequence[tuple[Sequence[sweep.Member],
                                       sweep.SweepState]]
                 ) -> sweep.SweepState:
  """The parts' states (of one step), members stacked in `members`' order.

  Args:
    members: the merged sweep's members.
    parts: (members, host state) of each part; together they hold every
      member of `members` once, by name.
  """
  where = {m.name: (p, m.index) for p, (part_members, _) in enumerate(parts)
           for m in part_members}
  order = [where[m.name] for m in members]

  def gather(*leaves):
    return np.stack([leaves[p][i] for p, i in order])

  states = [state for _, state in parts]
  return sweep.SweepState(
      step=states[0].step,
      members=jax.tree.map(gather, *[s.members for s in states]),
      failed_at=gather(*[s.failed_at for s in states]))


def _numeric_nans(row: Mapping[str, Any]) -> dict[str, Any]:
  """A row read back from sweep_results.json, its nans (stored as null)
  restored, so the merged tables and plot are those of a sweep trained whole."""
  return {key: np.nan if value is None else value
          for key, value in row.items()}


def _write_merged(config, workdir, members, state, part_of, rows, parts):
  """Everything train_sweep leaves in a workdir, for the merged members."""
  setup = sweep.setup_sweep(_with_seeds(config, config.sweep.seeds))
  manager = checkpointing.create_manager(
      workdir, config.max_checkpoints_to_keep)
  checkpointing.save(manager, config.num_train_steps,
                     jax.device_put(state, setup.state_sharding),
                     config.to_dict())
  manager.wait_until_finished()
  manager.close()
  for member in members:
    shutil.copytree(sweep.member_workdir(part_of[member.name], member.name),
                    sweep.member_workdir(workdir, member.name))
  run_records.write_json(os.path.join(workdir, 'sweep_members.json'),
                  [dataclasses.asdict(m) for m in members])
  run_records.write_config_json(workdir, config, 0)
  # The parts trained on one data source (check_part); any part's record of
  # it is the merged sweep's (parts trained before sweeps wrote one have none).
  recorded = [os.path.join(part.workdir, 'dataset.json') for part in parts
              if os.path.isfile(os.path.join(part.workdir, 'dataset.json'))]
  if recorded:
    shutil.copyfile(recorded[0], os.path.join(workdir, 'dataset.json'))
  run_records.write_json(os.path.join(workdir, MERGED_FROM_JSON), {
      'step': config.num_train_steps,
      'dataset_source': config.dataset_source,
      'parts': [{'workdir': os.path.abspath(part.workdir),
                 'seeds': part.seeds,
                 'data_dir': part.stored_config.get('data_dir')}
                for part in parts]})
  sweep_report.write_rows(
      workdir, rows, swept=config.sweep.grid or {},
      num_train_steps=config.num_train_steps,
      plot_metric_name=config.sweep.plot_metric)


def merge_sweeps(config: ml_collections.ConfigDict, workdir: str,
                 part_workdirs: Sequence[str]) -> list[dict[str, Any]]:
  """Merges finished seed shards of `config`'s sweep into `workdir`.

  Everything is written to a new directory beside `workdir` and renamed to
  it at the end, so a merge that fails leaves `workdir` as it was.

  Args:
    config: the whole sweep's config (its seeds: all the parts' seeds).
    workdir: a new or empty directory for the merged sweep.
    part_workdirs: the shards' workdirs.

  Returns:
    The merged sweep_results rows, in the config's member order.

  Raises:
    ValueError, FileNotFoundError: on a non-empty workdir, fewer than two
      parts, or a part that does not belong (see read_part, check_part,
      check_seeds); nothing is written then.
  """
  if jax.process_count() > 1:
    raise ValueError('sweep_merge runs in one process')
  if len(part_workdirs) < 2:
    raise ValueError(f'--parts needs at least two workdirs, got '
                     f'{list(part_workdirs)}')
  if os.path.isdir(workdir) and os.listdir(workdir):
    raise ValueError(f'{workdir} is not empty; merge into a new directory.')
  # The parts recorded their resolved configs; compare like with like.
  config = experiment_config.resolve(config)
  members = sweep.validate_sweep_config(config)
  parts = [read_part(part) for part in part_workdirs]
  # One data source for all: the first part's, when the config says 'auto'.
  config = run_records.data_source_as_trained(config, parts[0].stored_config)
  for part in parts:
    check_part(config, part)
  check_seeds(config.sweep.seeds, parts)
  restored = [restore_part_state(config, part) for part in parts]
  state = merge_states(members, restored)
  part_of = {m.name: part.workdir
             for part, (part_members, _) in zip(parts, restored)
             for m in part_members}
  rows_by_name = {row['member']: _numeric_nans(row) for part in parts
                  for row in sweep_report.read_member_rows(part.workdir)}
  rows = [rows_by_name[m.name] for m in members]

  parent = os.path.dirname(os.path.abspath(workdir))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix='.merging_', dir=parent)
  try:
    _write_merged(config, staging, members, state, part_of, rows, parts)
    if os.path.isdir(workdir):
      os.rmdir(workdir)  # Empty (checked above); rmdir refuses otherwise.
    os.rename(staging, workdir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  logging.info('Merged %d members from %s into %s.', len(members),
               ', '.join(part_workdirs), workdir)
  return rows
