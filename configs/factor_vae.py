r"""FactorVAE on dSprites (Kim & Mnih 2018): the ELBO plus γ·TC, TC from a discriminator.

The discriminator (6 × 1000 units, leaky ReLU 0.2) tells posterior samples
from dimension-permuted ones and trains with its own Adam (lr 1e-4, β₁ 0.5,
β₂ 0.9), as in disentanglement_lib (bvae_jax/objectives/factor_vae.py).
γ = 40, inside disentanglement_lib's grid {10, 20, 30, 40, 50, 100};
architecture, Adam 5e-4, batch 64 and 300,000 steps are shared with
configs/capacity.py, so the objectives compare on equal terms.

  python -m bvae_jax.main --config=configs/factor_vae.py --workdir=/tmp/factor_vae

CPU-sized run (5,000 steps):

  python -m bvae_jax.main --config=configs/factor_vae.py:quick --workdir=/tmp/factor_vae_quick
"""

from bvae_jax import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=chairs' or both."""
  return config_defaults.objective_config(arg, 'factor_vae',
                                           factor_vae_gamma=40.0)
