r"""Controlled capacity against the baselines on dSprites: same architecture, budget and seeds.

Five objectives and the plain VAE, one hyperparameter setting each, every one trained as a
sweep over the same seeds (bvae_jax/sweeps/sweep.py; seeds of one method train
together in one process) and evaluated with the whole metric suite, then set
side by side by bvae_jax/reproductions/method_comparison.py:

| method | objective | setting | why this value |
|---|---|---|---|
| capacity | capacity | γ = 1000, C 0 → 25 nats over the first third | Burgess et al. (2018), Sec. 5 |
| β-VAE | beta_vae | β = 4 | Higgins et al. (2017) on dSprites; the headline of issue 13 |
| VAE | beta_vae | β = 1 | the unregularised baseline of Higgins et al. (2017), Table 1 |
| β-TCVAE | beta_tcvae | β = 6 | the middle of disentanglement_lib's grid {1, 2, 4, 6, 8, 10} |
| FactorVAE | factor_vae | γ = 40 | disentanglement_lib's grid {10, 20, 30, 40, 50, 100}, near Kim & Mnih's dSprites range |
| DIP-VAE-I | dip_vae | λ_od = 10, λ_d = 100 | disentanglement_lib's grid {1, 2, 5, 10, 20, 50} with λ_d = 10 λ_od |

Locatello et al. (2019) found no value best across seeds and data sets, so these
are defensible middles, not tuned optima. Shared: Burgess A.1 architecture,
10 latents, Bernoulli decoder, Adam 1e-4 (disentanglement_lib's
`model_configs/shared.gin`), batch 64, 300,000 steps, 3 seeds. Paper-sized
(a GPU: the five sweeps run one after another):

  python -m bvae_jax.main --config=configs/compare_methods.py --workdir=/tmp/compare

CPU-sized (3 seeds, 3,000 steps each, C ramp over 1,000; Adam 5e-4 so that
something is learnt at all in so few steps; disentanglement_lib's metric
sample sizes):

  python -m bvae_jax.main --config=configs/compare_methods.py:quick --workdir=/tmp/compare_quick

`:methods=capacity+beta_vae` picks a subset.
"""

import ml_collections

from bvae_jax import config_defaults


# name -> the objective and its fields (method_comparison.method_config).
METHODS = {
    'capacity': {'objective': 'capacity', 'gamma': 1000.0,
                 'capacity_start': 0.0, 'capacity_max': 25.0,
                 'capacity_anneal_steps': 100_000},
    'beta_vae': {'objective': 'beta_vae', 'beta': 4.0},
    'vae': {'objective': 'beta_vae', 'beta': 1.0},
    'beta_tcvae': {'objective': 'beta_tcvae', 'beta': 6.0},
    'factor_vae': {'objective': 'factor_vae', 'factor_vae_gamma': 40.0},
    'dip_vae_i': {'objective': 'dip_vae', 'dip_type': 'i',
                  'dip_lambda_od': 10.0, 'dip_lambda_d_factor': 10.0},
}


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick' or 'methods=capacity+beta_vae'."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites',
                                     methods='+'.join(METHODS))
  names = args.methods.split('+')
  unknown = sorted(set(names) - set(METHODS))
  if unknown:
    raise ValueError(f'configs/compare_methods.py: unknown methods {unknown}; '
                     f'known: {sorted(METHODS)}')
  config = config_defaults.base_config()
  # One sweep per method, then the tables (reproductions/method_comparison.py).
  config.runner = 'method_comparison'
  config_defaults.set_dataset(config, args.dataset)
  # The methods to run, in order: {name: {objective, its fields}}.
  config.methods = ml_collections.ConfigDict(
      {name: dict(METHODS[name]) for name in names})
  config.learning_rate = 1e-4
  config.batch_size = 64
  config.num_train_steps = 300_000
  config.checkpoint_every_steps = 10_000
  config.figure_every_steps = config.num_train_steps
  # UDR (Duan et al. 2020) of each member against its method's other seeds,
  # on this many observations (udr_selection.DEFAULT_NUM_POINTS); 0: none.
  config.udr_num_points = 10_000
  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1, 2), grid={}, plot_metric='mig.discrete_mig')
  if args.quick:
    config.learning_rate = 5e-4
    config.num_train_steps = 3_000
    config.checkpoint_every_steps = 1_000
    config.figure_every_steps = 3_000
    if 'capacity' in names:
      config.methods.capacity.capacity_anneal_steps = 1_000
  return config
