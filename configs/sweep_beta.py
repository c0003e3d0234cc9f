r"""β sweep on dSprites: β ∈ {0.5, 1, 2.5, 5, 7.5, 10, 50} × seeds, in one process.

The grid and training settings are those of the published β-sweep study on
dSprites that issue 5 of this project names: 10 latents, batch 32, Adam 1e-3,
a 50,000-image subset, 10 epochs (50,000 / 32 × 10 = 15,625 steps), β·KL
objective (Higgins et al. 2017; β = 1 is the VAE), Bernoulli decoder. Only
these settings are taken from the study; the architecture is Burgess et al.'s
(configs/capacity.py).

All members train together (bvae_jax/sweeps/sweep.py): one step per batch,
members share each batch (common random numbers). Full sweep, 7 β × 3 seeds:

  python -m bvae_jax.main --config=configs/sweep_beta.py --workdir=/tmp/sweep_beta

The study's own size is one seed (--config.sweep.seeds='(0,)'; its wall
time on a 2-core CPU, and a prediction for 3 seeds, are in docs/benchmarks.md,
"Reproduction runs: wall times"). Seeds trained as such shards, in separate
runs, merge into the 3-seed sweep with bvae_jax/sweeps/sweep_merge.py.

CPU-sized (7 β × 1 seed, 10 epochs of a 5,000-image subset, 1,563 steps):

  python -m bvae_jax.main --config=configs/sweep_beta.py:quick --workdir=/tmp/sweep_beta_quick

The end of the sweep writes sweep_results.{csv,md,json} and sweep_<metric>.png
(config.sweep.plot_metric against β) in the workdir. Evaluate one member again
with --mode=evaluate --member='beta=5,seed=0'.

The study's figures (loss terms over epochs, MIG, Z-diff and modularity
against β, the matrices at β = 1 and 10, traversals at β = 5) and its Table 1
beside ours, in DIR/study (bvae_jax/reproductions/beta_sweep_study.py; it
trains the sweep first when DIR holds no finished one):

  python -m bvae_jax.main --config=configs/sweep_beta.py:quick,study --workdir=DIR

One β, and the study's likelihood question (does its β = 50 collapse because
its loss is a summed squared error rather than Bernoulli?): `beta=B` trains
that β alone (3 seeds), and `likelihood=gaussian` trains a Gaussian decoder
with σ = 1/√2, whose reconstruction term is the summed squared error (plus a
constant), the same β then weighing the KL against it:

  python -m bvae_jax.main --config=configs/sweep_beta.py:beta=50,likelihood=gaussian --workdir=/tmp/beta50_gaussian
  python -m bvae_jax.main --config=configs/sweep_beta.py:beta=50 --workdir=/tmp/beta50_bernoulli
"""


from bvae_jax import config_defaults

BETAS = (0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 50.0)


def epochs_to_steps(epochs: int, subset_size: int, batch_size: int) -> int:
  return -(-epochs * subset_size // batch_size)  # Ceiling: the last batch too.


def get_config(arg=None):
  """Returns the config; `arg` is e.g. 'quick', 'dataset=color_dsprites',
  'study' for the study's figures and table after the sweep, 'beta=50' for
  one β, 'likelihood=gaussian' for the summed-squared-error decoder."""
  args = config_defaults.parse_arg(arg, quick=False, dataset='dsprites',
                                     study=False, beta=0.0,
                                     likelihood='bernoulli')
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, args.dataset)
  config_defaults.set_objective(config, 'beta_vae')
  config.batch_size = 32
  config.learning_rate = 1e-3
  config.train_subset_size = 50_000
  config.num_train_steps = epochs_to_steps(10, config.train_subset_size,
                                           config.batch_size)
  config.checkpoint_every_steps = 2_500
  config.log_every_steps = 100
  config.figure_every_steps = config.num_train_steps  # Figures at the end.

  config.sweep = config_defaults.sweep_block(
      seeds=(0, 1, 2), grid={'beta': BETAS}, plot_metric='mig.discrete_mig')
  # The members' metrics at the end: the study's three (MIG, Z-diff = the
  # β-VAE score, modularity) and SAP, at disentanglement_lib's sample sizes.
  # The β-VAE score encodes every dSprites combination once per member (the
  # code table: ~160 s a member in the one-seed study run, docs/benchmarks.md
  # "Reproduction runs: wall times");
  # add 'dci' and 'factor_vae' for the whole suite.
  config.eval.metrics = ('mig', 'beta_vae', 'modularity_explicitness', 'sap')
  if args.beta:
    config.sweep.grid = {'beta': (args.beta,)}
  config.likelihood = args.likelihood
  if args.likelihood == 'gaussian':
    # −log N(x; μ, ½) per pixel = (x − μ)² + log(√π): the summed squared error.
    config.gaussian_stddev = 0.5 ** 0.5
  if args.quick:
    config.sweep.seeds = (0,)
    config.train_subset_size = 5_000
    config.num_train_steps = epochs_to_steps(10, config.train_subset_size,
                                             config.batch_size)
    config.checkpoint_every_steps = 500
  if args.study:
    # The study's figures and Table 1 (reproductions/beta_sweep_study.py),
    # after training the sweep if DIR holds no finished one.
    config.runner = 'beta_sweep_study'
  return config
