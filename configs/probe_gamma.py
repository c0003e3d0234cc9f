r"""Issue 13's γ probe: the capacity objective with γ = 100 and γ = 1000, one vmapped sweep.

Burgess et al. (2018) use γ = 1000; peers ship γ = 100 (disentangling-vae,
1Konny/Beta-VAE), and Burgess' advice (relayed in 1Konny/Beta-VAE issue 8) is
to take γ just large enough to keep the KL within ~1 nat of C. This sweep
trains both on the same batches with C raised from 0 to 25 nats over the first
80% of a short run (6,000 steps: C reaches 25 at step 4,800), the rest of
configs/capacity.py unchanged. docs/reproductions.md has what it showed.

  python -m bvae_jax.main --config=configs/probe_gamma.py --config.dataset_source=procedural --workdir=/tmp/probe_gamma

A longer probe: `--config.num_train_steps=20000 --config.capacity_anneal_steps=16000`.
"""

from bvae_jax import config_defaults

GAMMAS = (100.0, 1000.0)


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick' (2,000 steps) or 'dataset=NAME'."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites')
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, args.dataset)
  config_defaults.set_capacity_schedule(config)
  config.num_train_steps = 2_000 if args.quick else 6_000
  config.capacity_anneal_steps = int(0.8 * config.num_train_steps)
  config.checkpoint_every_steps = 1_000
  config.figure_every_steps = config.num_train_steps
  config.sweep = config_defaults.sweep_block(
      seeds=(0,), grid={'gamma': GAMMAS}, plot_metric='mig.discrete_mig')
  config.eval.metrics = ('mig', 'modularity_explicitness', 'sap')
  return config
