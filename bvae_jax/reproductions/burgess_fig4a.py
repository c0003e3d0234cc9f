r"""Burgess et al. (2018), Fig. 4a: which factor each latent of the capacity model carries.

The paper's model, trained with controlled capacity on coloured dSprites,
orders its ten latents by KL and reads them as: y, x, scale, shape,
rotation, three colour axes, and two unused latents. Each of the eight
factors gets a latent of its own.

  python -m bvae_jax.main --config=configs/burgess_fig4a.py:quick --workdir=DIR

trains the config's sweep (one member per seed; resuming if DIR holds one),
then encodes `config.eval.num_train` observations (disentanglement_lib's
sample, seed `config.eval.seed`) with every member and writes to DIR:

  fig4a_summary.json         per member: each latent by KL with its reading
                             (below), each factor's own latent if it has one,
                             MIG and its per-factor gaps; the paper's reading
                             and the count of factors that found a latent
  fig4a_traversals_<member>.png  the traversals, rows ordered by KL and
                             labelled with their reading
  fig4a_mutual_information_<member>.png  MI of each latent with each factor,
                             inactive latents hatched

A latent's reading is the factor with which its mean shares the most mutual
information relative to that factor's entropy (MI / H, disentanglement_lib's
histogram estimator, `config.eval.num_bins` bins, as MIG normalises it);
latents with KL below capacity_diagnostics.ACTIVE_KL_NATS are `unused`
whatever their histogram MI (a scale-free histogram amplifies the noise of an
inactive latent's mean). A factor has a latent of its own when some active
latent reads as that factor and that latent is also the factor's best among
the active latents: one latent per factor, as in the paper's figure.
"""

import json
import os
from typing import Any, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from bvae_jax.core import step as step_lib
from bvae_jax.datasets import registry
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.figures import drawing
from bvae_jax.metrics import mig
from bvae_jax.metrics import mutual_info
from bvae_jax.objectives import gaussians
from bvae_jax.objectives import likelihoods
from bvae_jax.sweeps import sweep

UNUSED = 'unused'
# The paper's reading of Fig. 4a, latents by KL (its row labels), in our
# factor names.
PAPER_READING = ('pos_y', 'pos_x', 'scale', 'shape', 'orientation', 'red',
                 'green', 'blue', UNUSED, UNUSED)
# Observations per encoder call.
ENCODE_BATCH = 500


def read_latents(means: np.ndarray, kl_per_latent: np.ndarray,
                 factors: np.ndarray, factor_names: Sequence[str],
                 num_bins: int) -> dict[str, Any]:
  """Each latent's reading and each factor's own latent.

  Args:
    means: (N, L) posterior means of N observations.
    kl_per_latent: (L,) average KL of each latent, nats.
    factors: (N, F) the observations' discrete factors.
    factor_names: the F factor names.
    num_bins: histogram bins per latent (disentanglement_lib: 20).

  Returns:
    {'latents': one dict per latent ordered by KL (latent, kl, active,
     reading, normalized_mi with every factor), 'factors': {name: {'latent':
     its own latent or None, 'normalized_mi', 'mig_gap'}}, 'mig',
     'num_factors_with_own_latent', 'num_unused_latents'}.
  """
  discrete = mutual_info.histogram_discretize(means, num_bins)
  mi = mutual_info.discrete_mutual_info(discrete, factors)  # (L, F)
  entropy = mutual_info.discrete_entropy(factors)
  with np.errstate(invalid='ignore', divide='ignore'):
    normalized = np.where(entropy > 0, mi / entropy, 0.0)
  inactive = capacity_diagnostics.inactive_latents(kl_per_latent)
  active_normalized = np.where(inactive[:, None], -np.inf, normalized)
  best_factor = normalized.argmax(axis=1)
  best_latent = active_normalized.argmax(axis=0)  # Per factor, active only.
  gaps = mig.mig_per_factor(means, factors, num_bins)
  latents = []
  for latent in drawing.latent_order_by_kl(kl_per_latent):
    latents.append({
        'latent': int(latent), 'kl': float(kl_per_latent[latent]),
        'active': bool(not inactive[latent]),
        'reading': (UNUSED if inactive[latent]
                    else factor_names[best_factor[latent]]),
        'normalized_mi': {name: float(normalized[latent, j])
                          for j, name in enumerate(factor_names)}})
  own = {}
  for j, name in enumerate(factor_names):
    latent = int(best_latent[j])
    has_own = (not inactive.all() and not inactive[latent]
               and best_factor[latent] == j)
    own[name] = {'latent': latent if has_own else None,
                 'normalized_mi': float(normalized[latent, j]) if has_own
                                  else None,
                 'mig_gap': float(gaps[j])}
  return {'latents': latents, 'factors': own,
          'mig': float(np.mean(gaps)),
          'num_factors_with_own_latent': sum(
              f['latent'] is not None for f in own.values()),
          'num_unused_latents': int(inactive.sum())}


def row_label(reading: dict[str, Any]) -> str:
  """'z3 KL 4.12: pos_x (0.61)', or 'z7 KL 0.01: unused'."""
  label = f"z{reading['latent']} KL {reading['kl']:.2f}: {reading['reading']}"
  if reading['active']:
    label += f" ({reading['normalized_mi'][reading['reading']]:.2f})"
  return label


def encode(encode_fn, params, observations: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
  """Posterior (means, log variances) of the observations, (N, L) each.

  `encode_fn` is step.jitted_encode(model), made once for all members.
  """
  parts = [encode_fn(params, observations[i:i + ENCODE_BATCH])
           for i in range(0, len(observations), ENCODE_BATCH)]
  return (np.concatenate([np.asarray(m) for m, _ in parts]),
          np.concatenate([np.asarray(v) for _, v in parts]))


def save_traversals(path: str, solo, model, params, observations: np.ndarray,
                    means: np.ndarray, kl_per_latent: np.ndarray,
                    readings: Sequence[dict[str, Any]], step: int) -> None:
  """The traversals of the first observation, rows labelled by reading."""
  decode = jax.jit(lambda p, z: likelihoods.decoder_mean(
      model.apply({'params': p}, z, method=model.decode), solo.likelihood))
  columns = solo.traversal_steps
  values = np.linspace(-solo.traversal_range, solo.traversal_range, columns,
                       dtype=np.float32)
  order = np.array([r['latent'] for r in readings])
  codes = drawing.traversal_codes(means[0], order, values)
  traversals = np.asarray(decode(params, codes.reshape(-1, codes.shape[-1])))
  traversals = traversals.reshape(codes.shape[:2] + observations.shape[1:])
  header = observations[:columns]
  reconstructions = np.asarray(decode(params, means[:columns]))
  drawing.save_traversal_figure(
      path, header, reconstructions, traversals, order, kl_per_latent,
      solo.traversal_range, step,
      row_labels=[row_label(r) for r in readings])


def summarise(config, workdir: str) -> dict[str, Any]:
  """Reads every member of the trained sweep; writes the figures and JSON."""
  summary = {'paper_reading': list(PAPER_READING),
             'paper_num_factors_with_own_latent': 8,
             'paper_num_unused_latents': 2,
             'num_points': config.eval.num_train, 'members': {}}
  ground_truth = None
  for member in sweep.validate_sweep_config(config):
    solo, params, step = sweep.restore_member(config, workdir, member.name)
    if ground_truth is None:
      ground_truth = registry.open_dataset(
          solo.dataset, solo.dataset_source, solo.data_dir).ground_truth()
      factors, observations = ground_truth.sample(
          config.eval.num_train, np.random.RandomState(config.eval.seed))
      observations = np.asarray(observations, np.float32)
      factor_names = list(ground_truth.factor_names)
      model = step_lib.create_model(solo)  # Members differ in params only.
      encode_fn = step_lib.jitted_encode(model)
    means, log_vars = encode(encode_fn, params, observations)
    kl = np.asarray(gaussians.kl_per_latent(means, log_vars)).mean(axis=0)
    reading = read_latents(means, kl, factors, factor_names,
                           config.eval.num_bins)
    summary['members'][member.name] = {'step': step, **reading}
    readings = reading['latents']
    save_traversals(os.path.join(workdir, f'fig4a_traversals_{member.name}.png'),
                    solo, model, params, observations, means, kl, readings,
                    step)
    order = np.array([r['latent'] for r in readings])
    drawing.save_mutual_information_figure(
        os.path.join(workdir, f'fig4a_mutual_information_{member.name}.png'),
        np.array([[r['normalized_mi'][n] for n in factor_names]
                  for r in readings]),
        order, kl[order], factor_names, step,
        inactive=capacity_diagnostics.inactive_latents(kl[order]),
        value_label='MI / H(factor)')
  with open(os.path.join(workdir, 'fig4a_summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the sweep (resuming), reads its latents; returns the summary."""
  sweep.train_sweep(config, workdir)
  summary = summarise(config, workdir)
  lines = []
  for name, member in summary['members'].items():
    lines.append(f"{name}: MIG {member['mig']:.3f}, "
                 f"{member['num_factors_with_own_latent']} of "
                 f"{len(member['factors'])} factors with a latent of their "
                 f"own (paper: 8 of 8), {member['num_unused_latents']} unused "
                 'latents (paper: 2)')
    lines.extend('  ' + row_label(reading) for reading in member['latents'])
  logging.info('Fig. 4a summary:\n%s', '\n'.join(lines))
  return summary
