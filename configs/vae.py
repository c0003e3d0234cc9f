r"""The plain VAE (Kingma & Welling 2014): the β-VAE objective with β = 1.

Same architecture, data and optimiser as configs/beta_vae.py.

  python -m bvae_jax.main --config=configs/vae.py --workdir=/tmp/vae

CPU-sized run (5,000 steps):

  python -m bvae_jax.main --config=configs/vae.py:quick --workdir=/tmp/vae_quick
"""

from bvae_jax import experiment_config


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=chairs' or both."""
  args = experiment_config.parse_arg(arg, quick=False, dataset='dsprites')
  config = experiment_config.base_config()
  experiment_config.set_dataset(config, args.dataset)
  experiment_config.set_objective(config, 'beta_vae')
  config.beta = 1.0
  if args.quick:
    experiment_config.set_quick_budget(config)
  return config
