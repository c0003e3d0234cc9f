"""The figures of bvae_jax: reconstructions, latent traversals (Burgess et al.
2018, Fig. 4 layout) and their animation (GIF), the mutual-information matrix
and per-factor MIG bars.

Functions here take plain arrays and write PNGs (GIFs with Pillow); the model calls that produce the
arrays live in `training_figures.py` and `evaluate.py`, so figures can be drawn
from a notebook as well. They draw on `matplotlib.figure.Figure` directly and
never choose a backend, so importing bvae_jax leaves a notebook's inline
plotting alone.
"""

import os

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
import numpy as np
from PIL import Image

# Pixels of background between tiles of a mosaic.
_GAP = 2


def panel_grid(num_panels: int, panel_size: tuple[float, float],
               per_row: int = 5) -> tuple[Figure, np.ndarray]:
  """A figure of `num_panels` axes in rows of `per_row`, spare axes hidden.

  Args:
    num_panels: how many panels (≥ 1).
    panel_size: (width, height) of one panel, inches.
    per_row: panels in a full row.

  Returns:
    (figure, the first `num_panels` axes, flat).
  """
  columns = min(num_panels, per_row)
  rows = -(-num_panels // columns)
  figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows))
  axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
  for axis in axes[num_panels:]:
    axis.set_visible(False)
  return figure, axes[:num_panels]


def latent_order_by_kl(kl_per_latent: np.ndarray) -> np.ndarray:
  """Latent indices sorted by average KL, high to low (ties by index)."""
  kl_per_latent = np.asarray(kl_per_latent)
  return np.lexsort((np.arange(kl_per_latent.size), -kl_per_latent))


def traversal_codes(seed_code: np.ndarray, latent_order: np.ndarray,
                    values: np.ndarray) -> np.ndarray:
  """Latent codes for a traversal: one row per latent, one column per value.

  Args:
    seed_code: (L,) the inferred posterior mean of the seed image.
    latent_order: (K,) which latents to traverse, in row order.
    values: (T,) the values each traversed latent takes in turn.

  Returns:
    (K, T, L) codes: row k is `seed_code` with latent `latent_order[k]` set to
    each of `values`.
  """
  codes = np.broadcast_to(seed_code, (len(latent_order), len(values),
                                      seed_code.size)).copy()
  for row, latent in enumerate(latent_order):
    codes[row, :, latent] = values
  return codes


def mosaic(tiles: np.ndarray) -> np.ndarray:
  """Lays out (R, C, H, W, ch) tiles as one (R·H + gaps, C·W + gaps, ch) image."""
  rows, cols, height, width, channels = tiles.shape
  canvas = np.ones((rows * (height + _GAP) - _GAP, cols * (width + _GAP) - _GAP,
                    channels), np.float32)
  for r in range(rows):
    for c in range(cols):
      top, left = r * (height + _GAP), c * (width + _GAP)
      canvas[top:top + height, left:left + width] = tiles[r, c]
  return canvas


def _save_mosaic(path: str, canvas: np.ndarray, row_labels: list[str],
                 tile_height: int, title: str) -> None:
  """Writes `canvas` with a label beside each row of tiles."""
  height, width, channels = canvas.shape
  scale = 2.0 / 100  # Two screen pixels per image pixel at dpi 100.
  figure = Figure(figsize=(width * scale + 1.6, height * scale + 0.5), dpi=100)
  axes = figure.add_axes((1.5 / (width * scale + 1.6), 0.1 / (height * scale + 0.5),
                          width * scale / (width * scale + 1.6),
                          height * scale / (height * scale + 0.5)))
  image = canvas[..., 0] if channels == 1 else canvas
  axes.imshow(np.clip(image, 0.0, 1.0), cmap='gray', vmin=0.0, vmax=1.0,
              interpolation='nearest')
  axes.set_xticks([])
  axes.set_yticks([r * (tile_height + _GAP) + tile_height / 2
                   for r in range(len(row_labels))])
  axes.set_yticklabels(row_labels, fontsize=8)
  axes.set_title(title, fontsize=9)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  figure.savefig(path)


def save_reconstruction_figure(path: str, images: np.ndarray,
                               reconstructions: np.ndarray, step: int) -> None:
  """Writes a two-row PNG: data (top) and reconstructions (bottom).

  Args:
    path: the PNG file to write.
    images: (N, H, W, C) data in [0, 1].
    reconstructions: (N, H, W, C) decoder means in [0, 1].
    step: the training step, for the title.
  """
  canvas = mosaic(np.stack([images, reconstructions]))
  _save_mosaic(path, canvas, ['data', 'reconstruction'], images.shape[1],
               f'Reconstructions at step {step}')


def save_traversal_figure(path: str, images: np.ndarray,
                          reconstructions: np.ndarray, traversals: np.ndarray,
                          latent_order: np.ndarray, kl_per_latent: np.ndarray,
                          traversal_range: float, step: int,
                          row_labels: list[str] | None = None) -> None:
  """Writes latent traversals in the layout of Burgess et al. (2018), Fig. 4.

  Top row: data; second row: their reconstructions; then one row per latent,
  ordered by average KL (high to low), each decoding the seed image's posterior
  mean with that latent swept over [−range, range].

  Args:
    path: the PNG file to write.
    images: (T, H, W, C) data in [0, 1], one per column.
    reconstructions: (T, H, W, C) their reconstructions in [0, 1].
    traversals: (K, T, H, W, C) decoded traversals, rows in `latent_order`.
    latent_order: (K,) the latent index of each traversal row.
    kl_per_latent: (L,) average KL of each latent, in nats.
    traversal_range: the sweep covers [−traversal_range, traversal_range].
    step: the training step, for the title.
    row_labels: (K,) labels of the traversal rows; None: 'z<i> KL=<kl>'.
  """
  canvas = mosaic(np.concatenate([images[None], reconstructions[None], traversals]))
  if row_labels is None:
    row_labels = [f'z{latent} KL={kl_per_latent[latent]:.2f}'
                  for latent in latent_order]
  if len(row_labels) != len(latent_order):
    raise ValueError(f'row_labels has {len(row_labels)} labels for '
                     f'{len(latent_order)} traversal rows')
  labels = ['data', 'reconstruction'] + list(row_labels)
  _save_mosaic(path, canvas, labels, images.shape[1],
               f'Latent traversals over [-{traversal_range:g}, {traversal_range:g}]'
               f' at step {step}, rows ordered by KL')


def traversal_animation_frames(traversals: np.ndarray,
                               columns: int = 5) -> np.ndarray:
  """The frames of an animated traversal, every latent moving at once.

  Frame t shows one tile per traversed latent (in the rows' order, `columns`
  tiles per line), each decoding its latent at the t-th value. The values run
  forward then back, so a looping animation has no jump.

  Args:
    traversals: (K, T, H, W, C) decoded traversals in [0, 1], as the rows of
      `save_traversal_figure`.
    columns: tiles per line of a frame.

  Returns:
    (F, h, w, C) uint8 frames, F = 2T − 2 (1 when T = 1).
  """
  num_latents, num_values = traversals.shape[:2]
  columns = min(columns, num_latents)
  lines = -(-num_latents // columns)
  blank = np.ones((lines * columns - num_latents,) + traversals.shape[1:],
                  traversals.dtype)
  grid = np.concatenate([traversals, blank]).reshape(
      (lines, columns) + traversals.shape[1:])
  order = list(range(num_values)) + list(range(num_values - 2, 0, -1))
  frames = np.stack([mosaic(grid[:, :, t]) for t in order])
  return np.round(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)


def save_gif(path: str, frames: np.ndarray, frame_ms: int = 120,
             scale: int = 2) -> None:
  """Writes (F, h, w, C) uint8 frames as a looping GIF, each pixel scale×scale.

  Pillow merges identical consecutive frames into one longer frame, so a
  model whose latents change nothing gives a still image.
  """
  frames = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
  pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f)
              for f in frames]
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  pictures[0].save(path, save_all=True, append_images=pictures[1:],
                   duration=frame_ms, loop=0)


def save_traversal_gif(path: str, traversals: np.ndarray, columns: int = 5,
                       frame_ms: int = 120) -> None:
  """Writes the animated traversal of `traversal_animation_frames` as a GIF.

  Args:
    path: the GIF file to write.
    traversals: (K, T, H, W, C) decoded traversals in [0, 1], rows ordered by
      KL as in `save_traversal_figure` (top-left tile: the highest-KL latent).
    columns: tiles per line.
    frame_ms: how long each frame shows.
  """
  save_gif(path, traversal_animation_frames(traversals, columns), frame_ms)


def save_mutual_information_figure(path, mutual_information, latent_order,
                                   kl, factor_names, step, inactive=None,
                                   value_label='mutual information (nats)'):
  """Heat map of MI: one row per code (ordered by KL), one column per factor.

  Rows of `inactive` codes (bool per row) are hatched and labelled: their
  histogram MI can look large although they carry no information.
  `value_label` names the values (e.g. 'MI / H(factor)' when normalised).
  """
  rows, cols = mutual_information.shape
  inactive = np.zeros(rows, bool) if inactive is None else np.asarray(inactive)
  figure = Figure(figsize=(1.2 + 0.9 * cols, 0.8 + 0.4 * rows))
  axes = figure.subplots()
  image = axes.imshow(mutual_information, cmap='viridis', aspect='auto')
  axes.set_xticks(range(cols), factor_names, rotation=30, ha='right')
  axes.set_yticks(range(rows), [
      f'z{i} (KL {k:.2f})' + (', inactive' if off else '')
      for i, k, off in zip(latent_order, kl, inactive)])
  for r in range(rows):
    if inactive[r]:
      axes.add_patch(Rectangle((-0.5, r - 0.5), cols, 1, fill=False,
                               hatch='///', edgecolor='0.85', linewidth=0))
    for c in range(cols):
      axes.text(c, r, f'{mutual_information[r, c]:.2f}', ha='center',
                va='center', fontsize=7, color='0.6' if inactive[r] else 'w')
  figure.colorbar(image, label=value_label)
  axes.set_title(f'Mutual information, step {step}')
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def save_kl_history_figure(path, steps, kl_per_latent, capacity=None,
                           information_per_latent=None):
  """Each latent's KL over training (and C, dashed), as Burgess Fig. 3.

  Args:
    path: the PNG to write.
    steps: (T,) logged steps.
    kl_per_latent: (T, L) batch-mean KL of each latent at those steps.
    capacity: (T,) the target C, or None for objectives without one.
    information_per_latent: (T, L) the part of each latent's KL that depends
      on the input (the Gaussian bound on I(x; z_l), objectives/elbo.py), or
      None. When given, a second panel draws it in the same colours, with
      its total: a KL that tracks C while this stays near 0 is an encoder
      that collapsed.
  """
  kl_per_latent = np.asarray(kl_per_latent)
  has_input_part = information_per_latent is not None
  figure = Figure(figsize=(11 if has_input_part else 6, 3.5))
  panels = figure.subplots(1, 2 if has_input_part else 1, sharey=True,
                           squeeze=False)[0]
  order = np.argsort(-kl_per_latent[-1])
  colours = [f'C{i % 10}' for i in range(kl_per_latent.shape[1])]
  axes = panels[0]
  for latent in order:
    axes.plot(steps, kl_per_latent[:, latent], color=colours[latent],
              label=f'z{latent}')
  if capacity is not None:
    axes.plot(steps, capacity, 'k--', label='C')
  if capacity is not None or has_input_part:
    axes.plot(steps, kl_per_latent.sum(1), 'k:', label='total KL')
  axes.set_xlabel('step')
  axes.set_ylabel('KL (nats)')
  axes.legend(fontsize=6, ncol=2, loc='upper left')
  axes.set_title('KL per latent')
  if has_input_part:
    input_part = np.asarray(information_per_latent)
    axes = panels[1]
    for latent in order:
      axes.plot(steps, input_part[:, latent], color=colours[latent],
                label=f'z{latent}')
    axes.plot(steps, input_part.sum(1), 'k:', label='total')
    axes.set_xlabel('step')
    axes.legend(fontsize=6, ncol=2, loc='upper left')
    axes.set_title('information: bound on I(x; z), nats')
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def save_mig_figure(path, gaps, factor_names, score, step):
  """Bar per factor: the normalised gap between its top two codes' MI."""
  figure = Figure(figsize=(1.5 + 0.8 * len(gaps), 3))
  axes = figure.subplots()
  axes.bar(range(len(gaps)), gaps)
  axes.set_xticks(range(len(gaps)), factor_names, rotation=30, ha='right')
  axes.set_ylim(0, 1)
  axes.set_ylabel('MIG per factor')
  axes.set_title(f'MIG {score:.3f}, step {step}')
  figure.tight_layout()
  figure.savefig(path, dpi=100)
