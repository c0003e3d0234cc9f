r"""β-VAE on dSprites (Higgins et al. 2017), β = 4.

The objective is E[−log p(x|z)] + β·KL. Higgins et al. report β = 4 for
dSprites with 10 latents; everything else (architecture, Adam 5e-4, batch 64,
300,000 steps, Bernoulli decoder) is shared with configs/capacity.py so the two
objectives are compared on equal terms.

  python -m bvae_jax.main --config=configs/beta_vae.py --workdir=/tmp/beta_vae

CPU-sized run (5,000 steps):

  python -m bvae_jax.main --config=configs/beta_vae.py:quick --workdir=/tmp/beta_vae_quick
"""

from bvae_jax import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=chairs' or both."""
  return config_defaults.objective_config(arg, 'beta_vae', beta=4.0)
