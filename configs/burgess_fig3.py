r"""Burgess et al. (2018) Fig. 3: the factor-conditioned generator under controlled capacity.

A decoder (appendix A.1) fed with dSprites' ground-truth factors through noisy,
learnably scaled channels (bvae_jax/reproductions/burgess_fig3.py), trained
with Eq. 7, γ·|Σ_k KL_k − C| + reconstruction, C from 0.5 to 25 nats. The
paper gives γ, the C range and the architecture but not the step budget; ours
ramps C over 100,000 steps, as its dSprites VAEs do:

  python -m bvae_jax.main --config=configs/burgess_fig3.py --workdir=/tmp/fig3

CPU-sized (C ramped over 18,000 of 20,000 steps; wall time on 2 cores:
docs/benchmarks.md, "Reproduction runs: wall times"):

  python -m bvae_jax.main --config=configs/burgess_fig3.py:quick --workdir=/tmp/fig3_quick
"""

import ml_collections


FIXED_DATASET = 'dsprites'  # The generator is fed dSprites' own factors.
from bvae_jax import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` may be 'quick'."""
  args = config_defaults.parse_arg(arg, quick=False)
  # Only the fields below: a generator, not a VAE run.
  config = ml_collections.ConfigDict()
  # bvae_jax.main runs it with reproductions/burgess_fig3.py (a generator,
  # not a VAE).
  config.runner = 'burgess_fig3'
  config.seed = 0
  config.batch_size = 64  # Burgess et al. A.1.
  config.learning_rate = 5e-4  # Adam, the decoder's (A.1).
  # Adam, the ten channel parameters': see burgess_fig3.create_optimizer.
  config.channel_learning_rate = 5e-3
  config.gamma = 1000.0  # Eq. 7's γ, as the paper.
  config.capacity_start = 0.5  # C from 0.5 (Fig. 3) ...
  config.capacity_max = 25.0  # ... to 25 nats ...
  config.capacity_anneal_steps = 100_000  # ... over this many steps.
  config.num_train_steps = 110_000
  # How shape and orientation enter: 'columns' (one-hot; cos, sin) or
  # 'scalar' (one standardised value each); reproductions/factor_inputs.py.
  config.factor_encoding = 'columns'
  config.conv_impl = config_defaults.DEFAULT_CONV_IMPL
  config.log_every_steps = 200
  config.checkpoint_every_steps = 5_000
  config.max_checkpoints_to_keep = 2
  # C values at which the generator's output is kept (the paper's Fig. 3).
  config.snapshot_capacities = (3.1, 7.3, 15.4, 23.8)
  if args.quick:
    config.capacity_anneal_steps = 18_000
    config.num_train_steps = 20_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 2_000
  return config
