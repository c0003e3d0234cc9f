"""The steps the benchmarks time, built as training builds them; no flags.

Shared by benchmarks/train_step.py, sweep.py and profile_step.py, so that
each times the same computation and they can be imported together.
"""

import jax
import numpy as np

from bvae_jax import config_defaults
from bvae_jax import experiment_config
from bvae_jax.core import devices
from bvae_jax.core import step as step_lib
from bvae_jax.sweeps import sweep
import configs.capacity


def binary_images(shape) -> np.ndarray:
  """Fixed random binary float32 images (dSprites-like sparsity)."""
  return (np.random.default_rng(0).uniform(size=shape) > 0.8).astype(
      np.float32)


def train_config(conv_impl: str, batch_size: int,
                 objective: str = 'capacity'):
  """configs/capacity.py at this batch and conv formulation, resolved."""
  config = configs.capacity.get_config()
  if objective != config.objective:
    config_defaults.set_objective(config, objective)
  config.batch_size = batch_size
  config.conv_impl = conv_impl
  # Fills the fields the data set decides (channels, latents), as a run does.
  return experiment_config.resolve(config)


def build_train_step(conv_impl: str, batch_size: int,
                     objective: str = 'capacity'):
  """One model's step, data-parallel over all devices as `bvae_jax.main` runs it.

  Returns:
    (step_fn, state, images, noise_key): call `step_fn(state, images,
    noise_key)`.
  """
  config = train_config(conv_impl, batch_size, objective)
  mesh = devices.create_mesh()
  model = step_lib.create_model(config)
  state = step_lib.initial_train_state(model, mesh, seed=config.seed,
                                       objective_name=config.objective)
  images = jax.device_put(binary_images((batch_size, 64, 64, 1)),
                          devices.batch_sharded(mesh))
  _, noise_key = step_lib.rng_streams(config.seed)
  return (step_lib.make_train_step(config, model, mesh), state, images,
          noise_key)


def build_sweep_step(members: int, batch_size: int, member_devices: int,
                     shared: bool, conv_impl: str, member_layout: str = 'auto'):
  """A vmapped sweep's step over `members` seeds (`sweep.setup_sweep`).

  Returns:
    (step_fn, state, images, mesh shape dict, member layout): call
    `step_fn(state, images)`.
  """
  config = configs.capacity.get_config()
  config.batch_size = batch_size
  config.conv_impl = conv_impl
  config.sweep = config_defaults.sweep_block(
      seeds=tuple(range(members)), grid={}, shared_batches=shared,
      member_devices=member_devices, member_layout=member_layout)
  setup = sweep.setup_sweep(config)
  state = setup.working_state(sweep.initial_sweep_state(setup))
  if setup.batch_per_member_arrays:
    images = tuple(jax.device_put(binary_images((batch_size, 64, 64, 1)),
                                  setup.images_sharding)
                   for _ in range(members))
  else:
    shape = ((batch_size,) if shared else (members, batch_size)) + (64, 64, 1)
    images = jax.device_put(binary_images(shape), setup.images_sharding)
  return (setup.step_fn, state, images, dict(setup.mesh.shape),
          setup.member_layout)
