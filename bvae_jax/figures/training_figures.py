"""The run's figures during training: reconstructions and latent traversals.

`FigureWriter` encodes and decodes a fixed set of images with the current
parameters and hands the arrays to `figures` (which only draws): PNGs and an
animated traversal (GIF) in workdir/figures, and the same mosaics as
TensorBoard images (`reconstructions`, `traversal`).
"""

import os
from typing import Any

import jax
import numpy as np

from bvae_jax.core import metric_logging
from bvae_jax.core import step as step_lib
from bvae_jax.figures import drawing
from bvae_jax.models import vae
from bvae_jax.objectives import likelihoods


class FigureWriter:
  """Draws reconstructions and traversals for fixed images during training."""

  def __init__(self, model: vae.VAE, workdir: str, images: np.ndarray, *,
               likelihood: str, num_figure_images: int, traversal_steps: int,
               traversal_range: float):
    """Draws `images` (their first `num_figure_images` reconstructed).

    Args:
      model: any model with encode and decode methods.
      workdir: figures go to workdir/figures.
      images: the fixed images, at least max(num_figure_images,
        traversal_steps) of them.
      likelihood: the decoder's (objectives/likelihoods.py), which says how
        its output becomes an image.
      num_figure_images: images in the reconstruction grid.
      traversal_steps: values per latent in a traversal.
      traversal_range: a traversal runs over [-range, range].
    """
    self._workdir = workdir
    self._images = images
    self._num_figure_images = num_figure_images
    self._traversal_steps = traversal_steps
    self._traversal_range = traversal_range
    # The model's own methods, so any model with encode/decode is drawn.
    self._encode = step_lib.jitted_encode(model)
    self._decode_mean = jax.jit(lambda params, z: likelihoods.decoder_mean(
        model.apply({'params': params}, z, method=model.decode), likelihood))

  def set_workdir(self, workdir: str) -> None:
    """Writes later figures to workdir/figures (sweeps: one per member)."""
    self._workdir = workdir

  def write(self, step: int, params: Any, kl_per_latent: np.ndarray,
            writer: metric_logging.MetricWriter) -> list[str]:
    """Writes the step's figures into workdir/figures and TensorBoard.

    Returns:
      The paths written: reconstructions_<step>.png, traversal_<step>.png,
      traversal_<step>.gif and (when the run has logged KL) kl_per_latent.png.
    """
    params = jax.device_get(params)
    images = self._images
    means, _ = self._encode(params, images)
    reconstructions = np.asarray(self._decode_mean(params, means))
    num_columns = self._traversal_steps
    order = drawing.latent_order_by_kl(kl_per_latent)
    values = np.linspace(-self._traversal_range, self._traversal_range,
                         num_columns, dtype=np.float32)
    codes = drawing.traversal_codes(np.asarray(means[0]), order, values)
    traversals = np.asarray(self._decode_mean(
        params, codes.reshape(-1, codes.shape[-1]))).reshape(
            codes.shape[:2] + images.shape[1:])
    figure_dir = os.path.join(self._workdir, 'figures')
    reconstruction_path = os.path.join(figure_dir,
                                       f'reconstructions_{step:08d}.png')
    traversal_path = os.path.join(figure_dir, f'traversal_{step:08d}.png')
    animation_path = os.path.join(figure_dir, f'traversal_{step:08d}.gif')
    num_recon = self._num_figure_images
    drawing.save_reconstruction_figure(reconstruction_path, images[:num_recon],
                                       reconstructions[:num_recon], step)
    header = np.resize(np.arange(len(images)), num_columns)
    drawing.save_traversal_figure(traversal_path, images[header],
                                  reconstructions[header], traversals, order,
                                  kl_per_latent, self._traversal_range, step)
    drawing.save_traversal_gif(animation_path, traversals)
    kl_history_path = self._write_kl_history(writer)
    writer.write_images(step, {
        'reconstructions': drawing.mosaic(np.stack(
            [images[:num_recon], reconstructions[:num_recon]])),
        'traversal': drawing.mosaic(np.concatenate(
            [images[header][None], reconstructions[header][None], traversals])),
    })
    return [reconstruction_path, traversal_path, animation_path] + (
        [kl_history_path] if kl_history_path else [])

  def _write_kl_history(self, writer: metric_logging.MetricWriter
                        ) -> str | None:
    """figures/kl_per_latent.png: each latent's KL so far (and C), from the
    run's event files, so a resumed run draws its whole history."""
    writer.flush()
    history = metric_logging.read_scalars(self._workdir)
    latents = sorted((tag for tag in history
                      if tag.startswith('kl_per_latent/z')),
                     key=lambda tag: int(tag.rpartition('z')[2]))
    if not latents:  # Process > 0 of a multi-host job writes no events.
      return None
    steps = sorted(history[latents[0]])
    kl = np.array([[history[tag].get(s, np.nan) for tag in latents]
                   for s in steps])
    capacity = ([history['capacity'].get(s, np.nan) for s in steps]
                if 'capacity' in history else None)
    input_tags = [tag.replace('kl_per_latent/', 'information_per_latent/')
                  for tag in latents]
    input_part = (np.array([[history[tag].get(s, np.nan) for tag in input_tags]
                            for s in steps])
                  if all(tag in history for tag in input_tags) else None)
    path = os.path.join(self._workdir, 'figures', 'kl_per_latent.png')
    drawing.save_kl_history_figure(path, steps, kl, capacity, input_part)
    return path
