r"""Controlled-capacity β-VAE on dSprites (Burgess et al. 2018, Section 5, Fig. 4).

The objective is E[−log p(x|z)] + γ·|KL − C| with γ = 1000 and the target KL C
rising linearly from 0 to 25 nats over 100,000 steps; Adam 5e-4, batch 64,
10 latents, Bernoulli decoder. The paper does not state the total number of
steps; we train 300,000, the budget disentanglement_lib (Locatello et al. 2019)
gives its AnnealedVAE runs, so the last 200,000 steps train at C = 25.

Paper scale (a GPU or TPU; on a 2-core CPU a prediction from the measured step
rate is in docs/benchmarks.md, "How cost grows"):

  python -m bvae_jax.main --config=configs/capacity.py --workdir=/tmp/capacity

CPU-sized run of the same experiment (C to 25 nats over 4,000 steps, 5,000
steps in all; shows KL tracking C; its wall time on 2 cores is in
docs/benchmarks.md, "The `:quick` run end to end"):

  python -m bvae_jax.main --config=configs/capacity.py:quick --workdir=/tmp/capacity_quick

Other data sets, with their settings (channels, latents, C_max,
filled in from the data set when the run starts; docs/datasets.md says how to obtain each):

  python -m bvae_jax.main --config=configs/capacity.py:dataset=color_dsprites --workdir=/tmp/color
  python -m bvae_jax.main --config=configs/capacity.py:dataset=gaussian_blobs,quick --workdir=/tmp/blobs
  python -m bvae_jax.main --config=configs/capacity.py:dataset=chairs --workdir=/tmp/chairs
  python -m bvae_jax.main --config=configs/capacity.py:dataset=celeb_a --workdir=/tmp/celeba  # 32 latents, C to 50

`dataset=dsprites` (the default) trains on the official dSprites file when
TFDS has it or can download it, else on the procedural renderer; the run's
dataset.json says which. `--config.dataset_source=procedural` (or `real`)
forces one. Override any field on the command line, e.g.
`--config.capacity_max=50`.
"""

from bvae_jax import config_defaults


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=chairs' or both."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites')
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, args.dataset)
  config_defaults.set_capacity_schedule(config)
  config.eval_every_steps = 100_000  # The metric suite at 100k, 200k, 300k.
  if args.quick:
    config.capacity_anneal_steps = 4_000
    config.num_train_steps = 5_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 1_000
    config.figure_every_steps = 2_500
    config.eval_every_steps = 0  # Evaluate after with --mode=evaluate.
  return config
