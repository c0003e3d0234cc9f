r"""The plain VAE (Kingma & Welling 2014): the β-VAE objective with β = 1.

Same architecture, data and optimiser as configs/beta_vae.py.

  python -m bvae_jax.main --config=configs/vae.py --workdir=/tmp/vae

CPU-sized run (5,000 steps):

  python -m bvae_jax.main --config=configs/vae.py:quick --workdir=/tmp/vae_quick
"""

from bvae_jax import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=chairs' or both."""
  return config_defaults.objective_config(arg, 'beta_vae', beta=1.0)
