r"""disentanglement_lib's unsupervised study grid for one objective, as one sweep.

Locatello et al. (2019) trained each method over six values of its
hyperparameter (disentanglement_lib `config/unsupervised_study_v1/sweep.py`,
with `model_configs/shared.gin`: Adam 1e-4, batch 64, 10 latents, 300,000
steps); this config is that grid for `objective=`:

| objective | swept | fixed |
|---|---|---|
| beta_vae | β ∈ {1, 2, 4, 6, 8, 16} | |
| capacity (AnnealedVAE) | C_max ∈ {5, 10, 25, 50, 75, 100} | γ = 1000, C ramp 100,000 steps |
| beta_tcvae | β ∈ {1, 2, 4, 6, 8, 10} | |
| factor_vae | γ ∈ {10, 20, 30, 40, 50, 100} | discriminator Adam 1e-4, β₁ 0.5, β₂ 0.9 |
| dip_vae, type=i | λ_od ∈ {1, 2, 5, 10, 20, 50} | λ_d = 10·λ_od |
| dip_vae, type=ii | λ_od ∈ {1, 2, 5, 10, 20, 50} | λ_d = λ_od |

The study used 50 seeds per setting; the default here is 3. FactorVAE's
step here is one update of the VAE and one of the discriminator; in
disentanglement_lib both updates advance the global step, so its "300,000
steps" are probably 150,000 such steps (read from its code, not run). All members train
together in one process (bvae_jax/sweeps/sweep.py):

  python -m bvae_jax.main --config=configs/sweep_study.py:objective=beta_tcvae --workdir=/tmp/study_beta_tcvae
  python -m bvae_jax.main --config=configs/sweep_study.py:objective=dip_vae,type=ii --workdir=/tmp/study_dip_ii

CPU-sized (6 settings × 1 seed, 2,000 steps, C ramp and all):

  python -m bvae_jax.main --config=configs/sweep_study.py:objective=capacity,quick --workdir=/tmp/study_capacity_quick
"""

from bvae_jax import config_defaults

# objective -> (swept field, its six values, fixed fields).
STUDY_GRIDS = {
    'beta_vae': ('beta', (1.0, 2.0, 4.0, 6.0, 8.0, 16.0), {}),
    'capacity': ('capacity_max', (5.0, 10.0, 25.0, 50.0, 75.0, 100.0),
                 {'gamma': 1000.0, 'capacity_start': 0.0,
                  'capacity_anneal_steps': 100_000}),
    'beta_tcvae': ('beta', (1.0, 2.0, 4.0, 6.0, 8.0, 10.0), {}),
    'factor_vae': ('factor_vae_gamma', (10.0, 20.0, 30.0, 40.0, 50.0, 100.0),
                   {}),
    'dip_vae/i': ('dip_lambda_od', (1.0, 2.0, 5.0, 10.0, 20.0, 50.0),
                  {'dip_type': 'i', 'dip_lambda_d_factor': 10.0}),
    'dip_vae/ii': ('dip_lambda_od', (1.0, 2.0, 5.0, 10.0, 20.0, 50.0),
                   {'dip_type': 'ii', 'dip_lambda_d_factor': 1.0}),
}


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'objective=beta_tcvae,quick'."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites',
                                     objective='capacity', type='i')
  key = (f'{args.objective}/{args.type}' if args.objective == 'dip_vae'
         else args.objective)
  if key not in STUDY_GRIDS:
    raise ValueError(f'configs/sweep_study.py: objective must be one of '
                     f'{sorted({k.partition("/")[0] for k in STUDY_GRIDS})}, '
                     f'got {args.objective!r} (type {args.type!r})')
  field, values, fixed = STUDY_GRIDS[key]
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, args.dataset)
  config_defaults.set_objective(config, args.objective)
  config.update(fixed)
  config.learning_rate = 1e-4
  config.batch_size = 64
  config.num_train_steps = 300_000
  config.checkpoint_every_steps = 10_000
  config.figure_every_steps = config.num_train_steps
  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1, 2), grid={field: values}, plot_metric='mig.discrete_mig')
  config.eval.metrics = ('mig', 'modularity_explicitness', 'sap')
  if args.quick:
    config.sweep.seeds = (0,)
    config.num_train_steps = 2_000
    config.checkpoint_every_steps = 500
    config.figure_every_steps = 2_000
    if args.objective == 'capacity':
      config.capacity_anneal_steps = 1_500
  return config
