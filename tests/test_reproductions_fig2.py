"""Burgess et al. (2018) Fig. 2's measurements and its end-to-end command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cli_processes
import configs.burgess_fig2
from bvae_jax.reproductions import burgess_fig2


def _ramp_code():
  """A smooth code: z0 follows x, z1 follows y, linearly over [−2, 2]."""
  ramp = np.linspace(-2, 2, 32)
  mean = np.zeros((32, 32, 4))
  mean[:, :, 0] = ramp[:, None]  # Axis 0 is pos_x.
  mean[:, :, 1] = ramp[None, :]
  return mean, np.zeros_like(mean)


def test_discontinuity_of_a_ramp_and_of_a_step():
  mean, _ = _ramp_code()
  np.testing.assert_allclose(burgess_fig2.discontinuity(mean)[:2], 1 / 31)
  step = np.where(np.arange(32)[:, None, None] < 16, -1.0, 1.0) * np.ones(
      (32, 32, 1))
  np.testing.assert_allclose(burgess_fig2.discontinuity(step), 1.0)


def test_a_smooth_axis_aligned_code_is_summarised_as_disentangled():
  summary = burgess_fig2.summarise_model(*_ramp_code())
  assert summary['active_latents'] == [0, 1]
  # KL of N(m, 1) against N(0, 1) is m²/2: mean over the ramp (2/3 nats).
  np.testing.assert_allclose(summary['kl_per_latent'][:2],
                             np.mean(np.linspace(-2, 2, 32)**2) / 2, rtol=1e-5)
  assert summary['max_discontinuity_of_active'] == pytest.approx(1 / 31)
  # A perfect code scores log 20 / log 32 ≈ 0.86 here, not 1: MIG's
  # histogram has 20 bins for a factor of 32 values (disentanglement_lib).
  assert summary['mig_full_grid'] == pytest.approx(np.log(20) / np.log(32),
                                                   abs=0.02)


def test_position_grid_images_put_the_blob_where_the_factors_say():
  images = burgess_fig2.position_grid_images()
  assert images.shape == (32, 32, 64, 64, 1) and images.max() == 1.0
  peak = np.unravel_index(np.argmax(images[3, 20, ..., 0]), (64, 64))
  assert peak == (16 + 20, 16 + 3)  # (row = pos_y, column = pos_x).


@pytest.mark.slow
def test_the_command_trains_both_models_and_writes_figure_and_summary(
    tmp_path):
  config = configs.burgess_fig2.get_config('quick')
  config.data_dir = str(tmp_path / 'tfds')
  config.batch_size = 8
  config.num_train_steps = 4
  config.checkpoint_every_steps = 4
  config.figure_every_steps = 4
  config.sweep.evaluate = False
  workdir = str(tmp_path / 'fig2')
  burgess_fig2.sweep.train_sweep(config, workdir)
  summary = burgess_fig2.summarise(config, workdir)
  assert list(summary) == ['beta=1', 'beta=150']
  assert os.path.getsize(os.path.join(workdir, 'fig2_position_tuning.png')) > 0
  with open(os.path.join(workdir, 'fig2_summary.json')) as f:
    assert json.load(f) == json.loads(json.dumps(summary))
  for model in summary.values():
    assert len(model['kl_per_latent']) == 10 and model['step'] == 4


@pytest.mark.slow
def test_the_command_modules_import_beside_main():
  # Both define --workdir-like flags only when run as commands; importing them
  # with bvae_jax.main (as notebooks and the test run do) must not clash.
  code = ('import bvae_jax.main, bvae_jax.reproductions.burgess_fig2, '
          'bvae_jax.evaluation.dataset_fidelity, bvae_jax.evaluation.dataset_samples')
  subprocess.run([sys.executable, '-c', code], check=True, cwd=cli_processes.REPO,
                 env=cli_processes.child_environment())
