r"""DIP-VAE on dSprites (Kumar et al. 2018): `:type=i` (default) or `:type=ii`.

The ELBO plus λ_od·Σ off-diagonal² + λ_d·Σ (diagonal − 1)² of the covariance of
the posterior means (I) or of the aggregate posterior (II), as in
disentanglement_lib (bvae_jax/objectives/dip_vae.py). λ_od = 10, the middle of
disentanglement_lib's grid {1, 2, 5, 10, 20, 50}, with its λ_d = 10·λ_od for
type I and λ_d = λ_od for type II. Architecture, Adam 5e-4, batch 64 and
300,000 steps are shared with configs/capacity.py.

  python -m bvae_jax.main --config=configs/dip_vae.py --workdir=/tmp/dip_vae_i
  python -m bvae_jax.main --config=configs/dip_vae.py:type=ii --workdir=/tmp/dip_vae_ii

CPU-sized run (5,000 steps):

  python -m bvae_jax.main --config=configs/dip_vae.py:type=ii,quick --workdir=/tmp/dip_vae_ii_quick
"""

from bvae_jax import config_defaults

# disentanglement_lib unsupervised_study_v1: λ_d = factor · λ_od.
LAMBDA_D_FACTOR = {'i': 10.0, 'ii': 1.0}


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'type=ii', 'quick' or both."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites',
                                     type='i')
  if args.type not in LAMBDA_D_FACTOR:
    raise ValueError(f"configs/dip_vae.py: type must be 'i' or 'ii', got "
                     f'{args.type!r}')
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, args.dataset)
  config_defaults.set_objective(config, 'dip_vae')
  config.dip_type = args.type
  config.dip_lambda_od = 10.0
  config.dip_lambda_d_factor = LAMBDA_D_FACTOR[args.type]
  if args.quick:
    config_defaults.set_quick_budget(config)
  return config
