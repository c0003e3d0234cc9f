r"""Burgess et al. (2018) Fig. 2: the VAE (β = 1) and a β-VAE (β = 150) on Gaussian blobs.

Both are trained together, as one vmapped sweep with shared batches, on the
1,024 images of one Gaussian blob at 32 × 32 positions (bvae_jax/datasets/
gaussian_blobs.py), with the architecture and Adam 5e-4, batch 64 of
configs/capacity.py. The paper states β but not the training budget; 50,000
steps (~3,100 epochs of this small set) is ours. After training,
bvae_jax/reproductions/burgess_fig2.py draws each latent's mean over the
position grid (the paper's position-tuning heat maps) and measures active
latents, discontinuities and MIG:

  python -m bvae_jax.main --config=configs/burgess_fig2.py --workdir=/tmp/fig2

(`--config.runner=train` trains the two models alone; the command above then
finds them trained and only draws and measures.)

CPU-sized (5,000 steps; wall time on 2 cores: docs/benchmarks.md,
"Reproduction runs: wall times"):

  python -m bvae_jax.main --config=configs/burgess_fig2.py:quick --workdir=/tmp/fig2_quick
"""

from bvae_jax import config_defaults

BETAS = (1.0, 150.0)  # Burgess et al. (2018), Fig. 2.
FIXED_DATASET = 'gaussian_blobs'  # The figure is about this set's positions.


def get_config(arg=None):
  """Returns the config; `arg` may be 'quick'."""
  args = config_defaults.parse_arg(arg, quick=False)
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, FIXED_DATASET)
  config_defaults.set_objective(config, 'beta_vae')
  config.num_train_steps = 50_000
  config.checkpoint_every_steps = 5_000
  config.figure_every_steps = 10_000
  config.sweep = config_defaults.sweep_block(
      seeds=(0,), grid={'beta': BETAS}, plot_metric='mig.discrete_mig')
  config.eval.metrics = ('mig',)
  if args.quick:
    config.num_train_steps = 5_000
    config.checkpoint_every_steps = 1_000
    config.figure_every_steps = 2_500
  config.runner = 'burgess_fig2'  # The sweep, then the figure (reproductions/burgess_fig2.py).
  return config
