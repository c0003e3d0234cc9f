r"""β-TCVAE on dSprites (Chen et al. 2018): the ELBO plus (β − 1)·total correlation.

TC is estimated on each minibatch as in disentanglement_lib
(bvae_jax/objectives/beta_tcvae.py). β = 6, the value Chen et al. show for
dSprites and the middle of disentanglement_lib's grid {1, 2, 4, 6, 8, 10};
architecture, Adam 5e-4, batch 64 and 300,000 steps are shared with
configs/capacity.py, so the objectives compare on equal terms.

  python -m bvae_jax.main --config=configs/beta_tcvae.py --workdir=/tmp/beta_tcvae

CPU-sized run (5,000 steps):

  python -m bvae_jax.main --config=configs/beta_tcvae.py:quick --workdir=/tmp/beta_tcvae_quick
"""

from bvae_jax import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=chairs' or both."""
  return config_defaults.objective_config(arg, 'beta_tcvae', beta=6.0)
