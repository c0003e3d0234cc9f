r"""Burgess et al. (2018) Fig. 4a: controlled capacity on coloured dSprites.

The paper trains the capacity model (γ = 1000, C from 0 to 25 nats) on dSprites
whose sprites take random colours, and shows the traversals of its ten
latents ordered by KL, reading them as y, x, scale, shape, rotation, three
colour axes and two unused latents. This config trains that model as a sweep
over seeds (bvae_jax/sweeps/sweep.py; seeds train together in one vmapped step) on
`color_dsprites` (bvae_jax/datasets/color_dsprites.py: each image in one of
6³ colours, the colour's r, g, b levels being three more factors), and
bvae_jax/reproductions/burgess_fig4a.py reads each latent: the factor it
carries most (mutual information over the factor's entropy), MIG, and the
traversals labelled with that reading.

Paper scale (a GPU; the schedule of configs/capacity.py, 3 seeds):

  python -m bvae_jax.main --config=configs/burgess_fig4a.py --workdir=/tmp/fig4a

(`--config.runner=train` trains the sweep alone; the command above then finds
it trained and only reads the latents.)

CPU-sized (one seed, 25,000 steps with C rising over the first 20,000, the
paper's ramp being 100,000; wall time on 2 cores: docs/benchmarks.md,
"Reproduction runs: wall times"; results in docs/results/burgess_fig4a_quick/):

  python -m bvae_jax.main --config=configs/burgess_fig4a.py:quick --workdir=/tmp/fig4a_quick

Any field can be overridden, e.g. `--config.gamma=100` (issue 13's γ probe).
"""

from bvae_jax import config_defaults

FIXED_DATASET = 'color_dsprites'  # The figure is about this set's factors.


def get_config(arg=None):
  """Returns the config; `arg` may be 'quick'."""
  args = config_defaults.parse_arg(arg, quick=False)
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, FIXED_DATASET)
  config_defaults.set_capacity_schedule(config)
  config.checkpoint_every_steps = 10_000
  config.figure_every_steps = 50_000
  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1, 2), grid={}, plot_metric='mig.discrete_mig')
  config.eval.metrics = ('mig',)
  if args.quick:
    config.num_train_steps = 25_000
    config.capacity_anneal_steps = 20_000
    config.checkpoint_every_steps = 2_000
    config.figure_every_steps = 10_000
    config.sweep.seeds = (0,)
  config.runner = 'burgess_fig4a'  # The sweep, then each latent read (reproductions/burgess_fig4a.py).
  return config
