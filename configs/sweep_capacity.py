r"""Controlled-capacity β-VAE over seeds × C_max ∈ {5, 10, 25, 50} nats, in one process.

Burgess et al. (2018) settings (configs/capacity.py: γ = 1000, C ramped from 0
over 100,000 steps, Adam 5e-4, batch 64, 10 latents) with the final capacity
swept. disentanglement_lib's AnnealedVAE study (Locatello et al. 2019) sweeps
C_max ∈ {5, 10, 25, 50, 75, 100}; add 75 and 100 with
`--config.sweep.grid.capacity_max='(5., 10., 25., 50., 75., 100.)'`.

  python -m bvae_jax.main --config=configs/sweep_capacity.py --workdir=/tmp/sweep_capacity

CPU-sized (4 C_max × 1 seed; C ramped over 1,500 of 2,000 steps):

  python -m bvae_jax.main --config=configs/sweep_capacity.py:quick --workdir=/tmp/sweep_capacity_quick
"""

from bvae_jax import config_defaults

CAPACITIES = (5.0, 10.0, 25.0, 50.0)


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=gaussian_blobs'."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites')
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, args.dataset)
  config_defaults.set_capacity_schedule(config)
  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1, 2), grid={'capacity_max': CAPACITIES},
      plot_metric='mig.discrete_mig')
  config.eval.metrics = ('mig', 'modularity_explicitness', 'sap')
  if args.quick:
    config.sweep.seeds = (0,)
    config.capacity_anneal_steps = 1_500
    config.num_train_steps = 2_000
    config.checkpoint_every_steps = 500
    config.figure_every_steps = 2_000
  return config
