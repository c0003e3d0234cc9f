r"""The 50,000-step study: capacity against β-VAE and β-TCVAE, one run per (method, seed).

Every run shares the data, architecture and optimiser; only the objective
differs:

| method | objective | setting | source |
|---|---|---|---|
| capacity | capacity | γ = 1000, C 0 → 25 nats over 40,000 steps | Burgess et al. (2018), Sec. 5 (their ramp is 100k of an unstated total) |
| capacity_gamma100 | capacity | γ = 100, same ramp | the γ probe (docs/reproductions.md) |
| beta_vae | beta_vae | β = 4 | Higgins et al. (2017) on dSprites |
| beta_tcvae | beta_tcvae | β = 6 | Chen et al. (2018); middle of disentanglement_lib's grid |

Shared: the procedural dSprites renderer (bvae_jax/datasets/dsprites.py, the
same 737,280 images for every run and machine), Burgess A.1 encoder/decoder,
10 latents, Bernoulli decoder, Adam 5e-4, batch 64, 50,000 steps. Checkpoints
every 5,000 steps; the whole metric suite, at disentanglement_lib's sample
sizes, runs at steps 10,000, 25,000 and 50,000 (eval/metrics_<step>.json).

One (method, seed) per command, so each fits in one background job; seeds are
0, 1, 2. Each finished run's wall time is in its run.json under
docs/results/study_50k/ (docs/reproductions.md quotes them):

  python -m bvae_jax.main --config=configs/study_50k.py:method=beta_vae,seed=0 --workdir=/tmp/study/beta_vae_s0

A re-run of the same command on the same workdir resumes from its last
checkpoint. `:method=NAME,seed=N,quick` is a smoke run of the same pipeline
(1,000 steps, C over 800, the suite at 200, 500 and 1,000 steps on 1,000
training points):

  python -m bvae_jax.main --config=configs/study_50k.py:method=capacity,seed=0,quick --workdir=/tmp/study_smoke

A finished run's results folder (config, data source, rate, metrics at each
step, KL and reconstruction history) and zoo model (its final parameters):

  python -m bvae_jax.main --config=configs/study_50k.py:method=beta_vae,seed=0 --workdir=/tmp/study/beta_vae_s0 --mode=publish --results_dir=docs/results/study_50k/beta_vae_s0 --zoo=study50k_beta_vae_s0
"""

from bvae_jax import config_defaults

# name -> the objective and its fields.
METHODS = {
    'capacity': {'objective': 'capacity', 'gamma': 1000.0,
                 'capacity_start': 0.0, 'capacity_max': 25.0,
                 'capacity_anneal_steps': 40_000},
    'capacity_gamma100': {'objective': 'capacity', 'gamma': 100.0,
                          'capacity_start': 0.0, 'capacity_max': 25.0,
                          'capacity_anneal_steps': 40_000},
    'beta_vae': {'objective': 'beta_vae', 'beta': 4.0},
    'beta_tcvae': {'objective': 'beta_tcvae', 'beta': 6.0},
}

# The steps at which every run is checkpointed and evaluated.
EVAL_STEPS = (10_000, 25_000, 50_000)
# The study is of dSprites (its metrics need the ground-truth factors).
FIXED_DATASET = 'dsprites'


def get_config(arg=None):
  """Returns the config; `arg` is 'method=NAME,seed=N' (NAME a key of
  METHODS), and 'quick' for the smoke run."""
  args = config_defaults.parse_arg(arg, method='capacity', seed=0,
                                     quick=False)
  if args.method not in METHODS:
    raise ValueError(f'configs/study_50k.py: unknown method {args.method!r}; '
                     f'known: {sorted(METHODS)}')
  fields = dict(METHODS[args.method])
  config = config_defaults.base_config()
  config_defaults.set_dataset(config, FIXED_DATASET)
  config_defaults.set_objective(config, fields.pop('objective'))
  config.update(fields)
  # The faithful renderer, so every run and machine sees the same images.
  config.dataset_source = 'procedural'
  config.seed = args.seed
  config.learning_rate = 5e-4
  config.batch_size = 64
  config.num_train_steps = EVAL_STEPS[-1]
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5_000
  config.figure_every_steps = 25_000
  config.eval_at_steps = EVAL_STEPS
  # Every checkpoint stays (~5.3 MB each, docs/benchmarks.md "Checkpoint
  # sizes"), so any evaluated step can be
  # evaluated again, and published, from the workdir.
  config.max_checkpoints_to_keep = 20
  if args.quick:
    config.num_train_steps = 1_000
    config.eval_at_steps = (200, 500, 1_000)
    config.checkpoint_every_steps = 500
    config.figure_every_steps = 1_000
    if config.objective == 'capacity':
      config.capacity_anneal_steps = 800
    config.eval.num_train = 1_000
    config.eval.num_test = 500
    config.eval.num_variance_estimate = 1_000
  return config
