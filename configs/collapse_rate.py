r"""How often the capacity objective meets its target with an encoder that carries nothing.

A capacity run can hold |KL − C| ≈ 0 while every input gets the same
posterior: the KL is then a shift or narrowing shared by all inputs, and its
`information` (objectives/elbo.py: the Gaussian bound on I(x; z)) stays near
0 (capacity_diagnostics.CollapseMonitor warns). Collapse shows by step
2,000-3,000, so this measures its rate cheaply: one sweep of 8 seeds × 3,000
steps per setting of γ ∈ {100, 1000} × C ramped from 0 to 25 nats over
{4,000, 40,000} steps, on the procedural dSprites, Adam 5e-4, batch 64, 10
latents, Bernoulli decoder (configs/study_50k.py's settings).

  python -m bvae_jax.main --config=configs/collapse_rate.py:gamma=1000,ramp=40000 --workdir=/tmp/collapse/g1000_r40000

`capacity_start=C0` starts C above 0 (as Burgess et al.'s Fig. 3 does), one
candidate remedy; `quick` is a 300-step smoke run of 2 seeds. No metric suite
runs: the collapse rate is read from each member's logged KL and information
by

  python -m bvae_jax.reproductions.collapse_rate --sweeps=/tmp/collapse/g1000_r40000,/tmp/collapse/g100_r40000 --out=docs/results/collapse_rate
"""

from bvae_jax import config_defaults

SEEDS = tuple(range(8))
# The rate is of dSprites, the data the collapse was found on.
FIXED_DATASET = 'dsprites'


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'gamma=1000,ramp=40000' (and 'quick')."""
  args = config_defaults.parse_arg(arg, gamma=1000.0, ramp=40_000,
                                     capacity_start=0.0, quick=False)
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, FIXED_DATASET)
  config_defaults.set_objective(config, 'capacity')
  config.dataset_source = 'procedural'
  config.gamma = args.gamma
  config.capacity_start = args.capacity_start
  config.capacity_max = 25.0
  config.capacity_anneal_steps = args.ramp
  config.learning_rate = 5e-4
  config.batch_size = 64
  config.num_train_steps = 3_000
  config.log_every_steps = 50
  config.checkpoint_every_steps = 1_000
  config.figure_every_steps = 3_000
  config.sweep = config_defaults.sweep_block(seeds=SEEDS, grid={},
                                               evaluate=False)
  if args.quick:
    config.sweep.seeds = (0, 1)
    config.num_train_steps = 300
    config.checkpoint_every_steps = 300
    config.figure_every_steps = 300
  return config
