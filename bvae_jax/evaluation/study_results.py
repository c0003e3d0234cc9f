"""A finished run's results folder and zoo model, small enough to commit.

`publish(config, workdir, results_dir, zoo_name)` reads a trained workdir and
writes `results_dir/`:

  config.json, dataset.json   as the run wrote them
  run.json                    steps, seed, wall time, training rate, commit,
                              the command that trained it
  metrics.json                {step: eval/metrics_<step>.json} of every
                              evaluated step
  history.json                every log interval: loss, reconstruction NLL,
                              KL and its input-dependent parts (information,
                              ½ Var[μ]), in total and per latent (and C for
                              capacity runs)
  figures/                    the final traversal, reconstructions, KL per
                              latent, and each evaluated step's MI matrix

and, with `zoo_name`, `zoo/<zoo_name>/` (bvae_jax/zoo.py): the final
parameters and their card, whose `check` holds the metrics of the small fixed
evaluation zoo.CHECK_EVAL that tests/test_zoo.py recomputes.

  python -m bvae_jax.main --config=configs/study_50k.py:method=beta_vae,seed=0 \
      --workdir=/tmp/study/beta_vae_s0 --mode=publish \
      --results_dir=docs/results/study_50k/beta_vae_s0 --zoo=study50k_beta_vae_s0

A sweep's member, by name (or index; the names are in sweep_members.json):

  python -m bvae_jax.main --config=configs/sweep_beta.py:beta=50 \
      --workdir=/tmp/beta50_bernoulli --mode=publish --member='beta=50,seed=0' \
      --results_dir=docs/results/beta50_likelihood/bernoulli_s0 \
      --zoo=beta50_bernoulli_s0
"""

import glob
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax.core import run_records
from bvae_jax.datasets import registry
from bvae_jax.evaluation import evaluate
from bvae_jax import experiment_config
from bvae_jax.sweeps import sweep
from bvae_jax.sweeps import sweep_report
from bvae_jax import zoo

# Scalars of history.json; vectors are read as '<name>/z<i>'.
HISTORY_SCALARS = ('loss', 'reconstruction', 'kl_total', 'information',
                   'kl_input_dependent', 'capacity', 'kl_capacity_gap',
                   'images_per_sec')
HISTORY_VECTORS = ('kl_per_latent', 'information_per_latent',
                   'kl_input_dependent_per_latent')


def training_history(workdir: str) -> dict[str, Any]:
  """{'step': [...], scalar: [...], vector: [[...] per step]} from the
  run's event files (every log interval; missing values are None)."""
  scalars = metric_logging.read_scalars(workdir)
  steps = sorted(scalars.get('loss', {}))
  history: dict[str, Any] = {'step': steps}
  for name in HISTORY_SCALARS:
    if name in scalars:
      history[name] = [scalars[name].get(s) for s in steps]
  for name in HISTORY_VECTORS:
    tags = sorted((tag for tag in scalars if tag.startswith(f'{name}/z')),
                  key=lambda tag: int(tag.rpartition('z')[2]))
    if tags:
      history[name] = [[scalars[tag].get(s) for tag in tags] for s in steps]
  return history


def wall_time_seconds(workdir: str) -> float:
  """Seconds from the run's first event to its last (training and its
  periodic evaluations; a resumed run's pause is included)."""
  times = [event.wall_time for event in metric_logging.read_events(workdir)]
  return float(max(times) - min(times)) if times else float('nan')


def current_commit() -> str:
  """The checkout's HEAD commit, with '+changes' if the tree differs."""
  root = os.path.dirname(zoo.ZOO_DIR)
  try:
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, text=True,
                            capture_output=True, check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'bvae_jax'],
                           cwd=root, text=True, capture_output=True,
                           check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'
  return commit + ('+changes' if dirty else '')


def evaluated_steps(workdir: str) -> dict[str, dict]:
  """{str(step): metrics JSON} of every eval/metrics_<step>.json, by step."""
  results = {}
  for path in glob.glob(os.path.join(workdir, 'eval', 'metrics_*.json')):
    with open(path) as f:
      result = json.load(f)
    results[str(result['step'])] = result
  return dict(sorted(results.items(), key=lambda item: int(item[0])))


def _read_json(path: str) -> Any:
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} is missing: is this a finished run?')
  with open(path) as f:
    return json.load(f)


def _check_member_finished(workdir: str, name: str) -> None:
  """Raises ValueError if the sweep's results say member `name` failed: its
  parameters stopped before the sweep's last step, which a card would claim."""
  if not os.path.isfile(sweep_report.results_path(workdir)):
    return  # Not finished: the member has no final evaluation either.
  rows = {row['member']: row for row in sweep_report.read_member_rows(workdir)}
  status = rows.get(name, {}).get('status', 'ok')
  if status != 'ok':
    raise ValueError(
        f'sweep member {name}: {status} ({sweep_report.results_path(workdir)}); '
        'its parameters are frozen from before that step, not trained to the '
        "sweep's end, so it is not published")


def _sweep_dataset_record(workdir: str, member_config: ml_collections.ConfigDict
                          ) -> dict[str, Any]:
  """A sweep's dataset.json, or for a sweep trained before sweeps wrote one,
  the record of its data opened now with the source it trained on."""
  path = os.path.join(workdir, 'dataset.json')
  if os.path.isfile(path):
    return _read_json(path)
  logging.info('%s is missing (the sweep predates it): describing the data '
               'set it trained on (%s, source %s) instead.', path,
               member_config.dataset, member_config.dataset_source)
  return registry.open_dataset(member_config.dataset,
                               member_config.dataset_source,
                               member_config.data_dir).describe()


def _copy_figures(workdir: str, results_dir: str, final_step: int,
                  steps: list[str]) -> list[str]:
  wanted = [os.path.join('figures', name) for name in (
      f'traversal_{final_step:08d}.png', f'reconstructions_{final_step:08d}.png',
      'kl_per_latent.png')]
  wanted += [os.path.join('eval', f'mutual_information_{step}.png')
             for step in steps]
  copied = []
  os.makedirs(os.path.join(results_dir, 'figures'), exist_ok=True)
  for relative in wanted:
    source = os.path.join(workdir, relative)
    if os.path.isfile(source):
      target = os.path.join(results_dir, 'figures', os.path.basename(relative))
      shutil.copyfile(source, target)
      copied.append(target)
  return copied


def check_evaluation(config: ml_collections.ConfigDict, params: Any,
                     step: int) -> dict[str, Any]:
  """evaluate.evaluate's result for zoo.CHECK_EVAL on `params`, written to a
  scratch directory (its KL and information per latent are on the same 2,048
  observations as any evaluation of these parameters: those do not depend
  on the sample sizes)."""
  small = zoo.check_config(config)
  with tempfile.TemporaryDirectory() as scratch:
    return evaluate.evaluate(small, scratch, step, params=params)


def check_metrics(config: ml_collections.ConfigDict, params: Any,
                  step: int, result: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
  """A card's `check`: zoo.CHECK_EVAL and its metrics on `params` (from
  `result`, check_evaluation's, when given)."""
  result = result or check_evaluation(config, params, step)
  return {'eval': {key: (list(value) if isinstance(value, tuple) else value)
                   for key, value in zoo.CHECK_EVAL.items()},
          'metrics': result['metrics']}


def publish(config: ml_collections.ConfigDict, workdir: str, results_dir: str,
            zoo_name: str | None = None, command: str | None = None,
            zoo_dir: str = zoo.ZOO_DIR,
            member: int | str | None = None) -> dict[str, Any]:
  """Writes the results folder of a finished run (and its zoo model).

  A sweep's member is published as the run it equals: its folder
  members/<name>/ holds its config, events, figures and evaluations, its
  parameters come from the sweep's checkpoint, and run.json adds `sweep`
  (the member's name and the member count; the wall time is the span of its
  events, which the members trained side by side). A member that failed
  (non-finite loss; sweep_results.json) is refused.

  Args:
    config: the run's config (as trained); a sweep's config for a member.
    workdir: the finished run's (or sweep's) workdir.
    results_dir: the folder to write (created; files in it are replaced).
    zoo_name: also publish the final parameters as zoo/<zoo_name>; None: not.
    command: the command that trained the run, for run.json and the card.
    zoo_dir: the zoo to publish into (tests use their own).
    member: for a sweep config, the member's index or name (required).

  Returns:
    run.json's content.

  Raises:
    FileNotFoundError: the workdir lacks config.json, dataset.json or any
      evaluation (names the file).
    evaluate.NoCheckpointError: no checkpoint to publish.
    ValueError: a sweep without `member`, `member` without a sweep, or a
      member that failed.
    KeyError: no sweep member `member` (lists the names).
  """
  if config.get('sweep') is None:
    if member is not None:
      raise ValueError(f'member {member!r}: the config has no sweep block; '
                       'publish a sweep member with the sweep\'s config')
    run_dir, sweep_record = workdir, None
  else:
    if member is None:
      raise ValueError('The config is a sweep: name the member to publish '
                       '(--member=NAME or index; the names are in '
                       f'{os.path.join(workdir, "sweep_members.json")})')
    found = sweep.find_member(experiment_config.resolve(config), member)
    _check_member_finished(workdir, found.name)
    run_dir = sweep.member_workdir(workdir, found.name)
    sweep_record = {'member': found.name,
                    'num_members': len(sweep.sweep_members(config))}
  stored_config = _read_json(os.path.join(run_dir, 'config.json'))
  metrics = evaluated_steps(run_dir)
  if not metrics:
    raise FileNotFoundError(
        f'{run_dir}/eval holds no metrics_<step>.json: evaluate the run first '
        '(--mode=evaluate' + (f' --member={sweep_record["member"]!r})'
                              if sweep_record else ')'))
  if sweep_record:
    config, params, step = sweep.restore_member(config, workdir, member)
    dataset = _sweep_dataset_record(workdir, config)
  else:
    dataset = _read_json(os.path.join(workdir, 'dataset.json'))
    params, step, _ = evaluate.restore_params(config, workdir)
  history = training_history(run_dir)
  rates = [r for r in history.get('images_per_sec', []) if r is not None]
  final = metrics.get(str(step))
  run = {
      'steps': step, 'seed': stored_config['seed'],
      'objective': stored_config['objective'],
      'wall_time_seconds': round(wall_time_seconds(run_dir), 1),
      'images_per_sec': round(float(np.median(rates)), 1) if rates else None,
      'commit': current_commit(), 'command': command,
      'evaluated_steps': [int(s) for s in metrics],
      'reconstruction_nll': history['reconstruction'][-1],
  }
  if sweep_record:
    run['sweep'] = sweep_record
  os.makedirs(results_dir, exist_ok=True)
  run_records.write_json(os.path.join(results_dir, 'config.json'), stored_config)
  run_records.write_json(os.path.join(results_dir, 'dataset.json'), dataset)
  run_records.write_json(os.path.join(results_dir, 'run.json'), run)
  run_records.write_json(os.path.join(results_dir, 'metrics.json'), metrics)
  run_records.write_json(os.path.join(results_dir, 'history.json'), history)
  figures = _copy_figures(run_dir, results_dir, step, list(metrics))
  logging.info('Wrote %s (%d figures).', results_dir, len(figures))
  if zoo_name:
    if final is None:
      raise FileNotFoundError(f'{run_dir}/eval/metrics_{step}.json is missing: '
                              f'evaluate step {step} before publishing it')
    check = check_evaluation(config, params, step)
    # Evaluations written before the information per latent existed lack it
    # (and the ½ Var μ split): the check's evaluation computes both on the
    # same observations as the final evaluation would have.
    latents = {field: final.get(field, check[field]) for field in (
        'kl_input_dependent_per_latent', 'information_per_latent',
        'informative_latents')}
    card = {
        **run, 'config': stored_config, 'dataset': dataset,
        'metrics': {s: result['metrics'] for s, result in metrics.items()},
        'kl_per_latent': final['kl_per_latent'],
        'active_latents': final['active_latents'],
        **latents,
        'latents_from': ('final evaluation' if all(
            field in final for field in latents) else 'check evaluation'),
        'results': os.path.relpath(results_dir, os.path.dirname(zoo_dir)),
        'check': check_metrics(config, params, step, check),
    }
    folder = zoo.save(zoo_name, params, card, zoo_dir)
    logging.info('Published zoo model %s in %s.', zoo_name, folder)
  return run
