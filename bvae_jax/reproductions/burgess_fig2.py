r"""Burgess et al. (2018), Fig. 2: how a VAE and a β-VAE encode a blob's position.

The paper trains a VAE (β = 1) and a β-VAE (β = 150) on Gaussian blobs that
vary only in x and y, and shows each latent's inferred mean over the grid of
blob positions. Its claims: the VAE spreads position over ~4 latents whose
maps have discontinuities (a fragmented code); the β-VAE uses 2 latents with
smooth maps, one per axis.

  python -m bvae_jax.main --config=configs/burgess_fig2.py:quick --workdir=DIR

trains both models as one sweep (resuming if DIR holds one), then writes to DIR:

  fig2_position_tuning.png  per model, each latent's mean over the 32 × 32
                            positions (x to the right, y down), latents by KL,
                            diverging colours −3 → 0 → 3 as the paper
  fig2_summary.json         per model: KL per latent, the active latents (KL ≥
                            capacity_diagnostics.ACTIVE_KL_NATS), each active
                            latent's discontinuity, MIG on (x, y)

and each model's traversals under members/<name>/figures/. Discontinuity of a
latent's map is the largest jump between neighbouring positions divided by the
map's range: ~1/31 for a smooth ramp across the grid, up to 1 for a map that
jumps from one extreme to the other between two neighbouring positions. MIG
is computed on the full grid (every position once) with disentanglement_lib's
histogram estimator (bvae_jax/metrics/mig.py).
"""

import json
import os
from typing import Any

from absl import logging
from matplotlib.figure import Figure
import ml_collections
import numpy as np

from bvae_jax.core import step as step_lib
from bvae_jax.datasets import gaussian_blobs
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.metrics import mig
from bvae_jax.objectives import gaussians
from bvae_jax.sweeps import sweep

# The paper's colour range for the latent means.
TUNING_RANGE = 3.0


def position_grid_images() -> np.ndarray:
  """(32, 32, 64, 64, 1) float32: the blob at (pos_x, pos_y), in [0, 1]."""
  factors = gaussian_blobs.index_to_factors(np.arange(gaussian_blobs.NUM_IMAGES))
  images = gaussian_blobs.render(factors).astype(np.float32)
  images /= gaussian_blobs.MAX_PIXEL_VALUE
  return images.reshape(gaussian_blobs.FACTOR_SIZES + images.shape[1:])


def encode_grid(model, params, images: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
  """The posterior (mean, log_var) of every grid image: each (32, 32, L)."""
  flat = images.reshape((-1,) + images.shape[2:])
  mean, log_var = step_lib.jitted_encode(model)(params, flat)
  shape = images.shape[:2] + (-1,)
  return np.asarray(mean).reshape(shape), np.asarray(log_var).reshape(shape)


def discontinuity(tuning: np.ndarray) -> np.ndarray:
  """(L,): largest jump between 4-neighbours of each (32, 32, L) map / its range."""
  jumps = np.maximum(np.abs(np.diff(tuning, axis=0)).max(axis=(0, 1)),
                     np.abs(np.diff(tuning, axis=1)).max(axis=(0, 1)))
  spread = tuning.max(axis=(0, 1)) - tuning.min(axis=(0, 1))
  return jumps / np.maximum(spread, 1e-12)


def summarise_model(mean: np.ndarray, log_var: np.ndarray) -> dict[str, Any]:
  """KL, active latents, their discontinuity and MIG of one model's grid code."""
  kl = gaussians.kl_per_latent(mean, log_var).reshape(-1, mean.shape[-1])
  kl = np.asarray(kl).mean(axis=0)
  active = np.flatnonzero(~capacity_diagnostics.inactive_latents(kl))
  factors = gaussian_blobs.index_to_factors(np.arange(gaussian_blobs.NUM_IMAGES))
  codes = mean.reshape(-1, mean.shape[-1])
  jumps = discontinuity(mean)
  return {
      'kl_per_latent': kl.tolist(),
      'active_latents': active.tolist(),
      'num_active_latents': int(len(active)),
      'discontinuity_of_active': {f'z{i}': float(jumps[i]) for i in active},
      'max_discontinuity_of_active': float(jumps[active].max()) if len(active)
                                     else None,
      'mig_full_grid': mig.mig(codes, factors)['discrete_mig'],
  }


def save_tuning_figure(path: str, tunings: dict[str, np.ndarray],
                       kls: dict[str, np.ndarray]) -> None:
  """One row per model: its latents' mean maps over the grid, by KL."""
  num_latents = max(t.shape[-1] for t in tunings.values())
  figure = Figure(figsize=(1.3 * num_latents + 1, 1.6 * len(tunings) + 0.6))
  axes = figure.subplots(len(tunings), num_latents, squeeze=False)
  image = None
  for row, (name, tuning) in zip(axes, tunings.items()):
    kl = kls[name]
    for axis, latent in zip(row, np.argsort(-kl, kind='stable')):
      # Rows are pos_y (down), columns pos_x (right), as the images.
      image = axis.imshow(tuning[:, :, latent].T, cmap='RdBu_r',
                          vmin=-TUNING_RANGE, vmax=TUNING_RANGE)
      off = capacity_diagnostics.inactive_latents(kl[latent:latent + 1])[0]
      axis.set_title(f'z{latent} KL {kl[latent]:.2f}' +
                     (' (off)' if off else ''), fontsize=7)
      axis.set_xticks([])
      axis.set_yticks([])
    row[0].set_ylabel(name, fontsize=8)
  figure.colorbar(image, ax=axes, shrink=0.8, label='posterior mean')
  figure.savefig(path, dpi=100)


def summarise(config, workdir: str) -> dict[str, Any]:
  """Encodes the grid with every member of the trained sweep; writes outputs."""
  images = position_grid_images()
  summary, tunings, kls = {}, {}, {}
  for member in sweep.validate_sweep_config(config):
    solo, params, step = sweep.restore_member(config, workdir, member.name)
    model = step_lib.create_model(solo)
    mean, log_var = encode_grid(model, params, images)
    name = f'beta={solo.beta:g}'
    summary[name] = {'member': member.name, 'step': step,
                     **summarise_model(mean, log_var)}
    tunings[name], kls[name] = mean, np.asarray(summary[name]['kl_per_latent'])
  save_tuning_figure(os.path.join(workdir, 'fig2_position_tuning.png'),
                     tunings, kls)
  with open(os.path.join(workdir, 'fig2_summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the sweep (resuming) and writes the figure; returns the summary."""
  sweep.train_sweep(config, workdir)
  summary = summarise(config, workdir)
  logging.info('Fig. 2 summary:\n%s', json.dumps(summary, indent=1))
  return summary
