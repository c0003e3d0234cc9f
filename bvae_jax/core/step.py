"""The train state and the train step: pure functions, jit-, vmap- and shard-able.

`train_step(state, images, noise_key, hparams) -> (state, metrics)` is one Adam
update. Its randomness is `fold_in(noise_key, state.step)`, so a resumed run
draws the same noise as an uninterrupted one. The loss is the configured
objective's (`bvae_jax.objectives`); its numeric hyperparameters enter the step
as traced float32 scalars (one compiled step serves every value, and a sweep
vmaps over them), its string fields as static arguments. `make_train_step`
jits the step for a device mesh: the batch split along the mesh's `data` axis,
the state replicated and donated, the gradient all-reduce inserted by XLA.
The loops that call it live in train.py (one run) and sweep.py (many).
"""

import functools
from typing import Any, Callable, Mapping

from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bvae_jax.core import devices
from bvae_jax.models import vae
from bvae_jax import objectives


class TrainState(struct.PyTreeNode):
  """Everything that changes during training; pure data, so vmap/shard-able.

  Attributes:
    step: number of updates applied so far (int32 scalar).
    params: the VAE's parameters.
    opt_state: Adam's state.
  """
  step: jax.Array
  params: Any
  opt_state: Any


class AuxiliaryTrainState(TrainState):
  """The train state of an objective with state of its own.

  Objectives that define `init_auxiliary` (FactorVAE's discriminator and its
  optimiser) train with this state; the others keep `TrainState`, whose
  checkpoints are unchanged by this field.

  Attributes:
    auxiliary: the objective's state, updated by its `update_auxiliary`.
  """
  auxiliary: Any


def has_auxiliary_state(objective_name: str) -> bool:
  """Whether the objective carries state of its own in the train state."""
  return hasattr(objectives.get(objective_name), 'init_auxiliary')


def rng_streams(seed: int) -> tuple[jax.Array, jax.Array]:
  """Independent keys for parameter initialisation and reparameterisation noise."""
  root = jax.random.key(seed)
  return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def create_model(config: ml_collections.ConfigDict) -> vae.VAE:
  """The VAE the config describes (latents, channels, conv formulation)."""
  return vae.VAE(latent_dim=config.latent_dim,
                    num_channels=config.num_channels,
                    conv_impl=config.conv_impl)


def jitted_encode(model) -> Callable[[Any, jax.Array],
                                     tuple[jax.Array, jax.Array]]:
  """(params, observations) -> the posterior (mean, log_var), compiled once.

  Any model with an `encode` method works; one compiled function serves
  every member of a sweep, as their parameters share shapes.
  """
  return jax.jit(lambda params, observations: model.apply(
      {'params': params}, observations, method=model.encode))


def create_optimizer(learning_rate: float | jax.Array
                     ) -> optax.GradientTransformation:
  """Adam; its state does not depend on `learning_rate`, which may be traced."""
  return optax.adam(learning_rate)


def hyperparameter_fields(objective_name: str) -> tuple[str, ...]:
  """The numeric config fields the step of `objective_name` reads (traced;
  what sweeps may vary)."""
  return (objectives.SHARED_HYPERPARAMETERS +
          objectives.get(objective_name).HYPERPARAMETERS)


def hyperparameters(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The step's numeric hyperparameters as float32 scalars."""
  return {name: np.float32(config[name])
          for name in hyperparameter_fields(config.objective)}


def static_fields(config: ml_collections.ConfigDict) -> dict[str, str]:
  """The config's fields that choose the step's computation (static)."""
  objective = objectives.get(config.objective)
  return {'objective': config.objective,
          **{field: config[field] for field in
             objectives.SHARED_STATIC_FIELDS + objective.STATIC_FIELDS}}


def image_shape(num_channels: int) -> tuple[int, int, int]:
  """(H, W, C) of the images the model takes (validate_config checks that
  the data set's images have it)."""
  return (vae.IMAGE_SIZE, vae.IMAGE_SIZE, num_channels)


def create_train_state(model: vae.VAE, init_key: jax.Array,
                       objective_name: str) -> TrainState:
  """A fresh state at step 0 (pure: jit-, vmap- and eval_shape-able).

  Args:
    model: the VAE; its `num_channels` and `latent_dim` size the state.
    init_key: the initialisation key (`rng_streams(seed)[0]`).
    objective_name: config.objective; an objective with state of its own
      (FactorVAE's discriminator) makes an `AuxiliaryTrainState`.
  """
  dummy = jnp.zeros((1,) + image_shape(model.num_channels), jnp.float32)
  params_key, noise_key = jax.random.split(init_key)
  params = model.init(params_key, dummy, noise_key)['params']
  # Adam's state does not depend on the learning rate (a traced
  # hyperparameter of the step), so any value initialises it.
  fields = dict(step=jnp.zeros((), jnp.int32), params=params,
                opt_state=create_optimizer(0.0).init(params))
  if not has_auxiliary_state(objective_name):
    return TrainState(**fields)
  # A stream of its own, so the VAE's initialisation is every objective's.
  auxiliary_key = jax.random.fold_in(init_key, 1)
  return AuxiliaryTrainState(
      **fields, auxiliary=objectives.get(objective_name).init_auxiliary(
          model.latent_dim, auxiliary_key))


def train_step(state: TrainState, images: jax.Array, noise_key: jax.Array,
               hparams: Mapping[str, jax.Array], *, model: vae.VAE,
               static: Mapping[str, str]
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam update on one batch.

  Args:
    state: the current state.
    images: (N, 64, 64, C) float32 in [0, 1].
    noise_key: the run's noise key; this step's noise uses
      `fold_in(noise_key, state.step)`.
    hparams: `hyperparameters(config)`, as float32 scalars (traced).
    model: the VAE.
    static: `static_fields(config)`.

  Returns:
    The new state and the objective's terms (scalars, and `kl_per_latent` of
    shape (L,)), plus `grad_norm` for the non-finite check.

  With an `AuxiliaryTrainState`, the objective's `loss` also reads
  `state.auxiliary`, and its `update_auxiliary` then updates that from the
  same forward pass's z (noise `fold_in(step's key, 1)`).
  """
  step_key = jax.random.fold_in(noise_key, state.step)
  objective = objectives.get(static['objective'])
  auxiliary = ((state.auxiliary,) if isinstance(state, AuxiliaryTrainState)
               else ())

  def loss_fn(params):
    outputs = model.apply({'params': params}, images, step_key)
    loss, terms = objective.loss(outputs, images, state.step, hparams, static,
                                 *auxiliary)
    return loss, (terms, outputs.z if auxiliary else None)

  (_, (metrics, z)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  optimizer = create_optimizer(hparams['learning_rate'])
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics['grad_norm'] = optax.tree.norm(grads)
  state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  if auxiliary:
    new_auxiliary, auxiliary_terms = objective.update_auxiliary(
        auxiliary[0], z, jax.random.fold_in(step_key, 1), hparams, static)
    state = state.replace(auxiliary=new_auxiliary)
    metrics.update(auxiliary_terms)
  return state, metrics


def make_train_step(config: ml_collections.ConfigDict, model: vae.VAE,
                    mesh: jax.sharding.Mesh) -> Callable:
  """`train_step` jitted for `mesh`: state replicated and donated, batch split.

  Returns:
    `step_fn(state, images, noise_key) -> (state, metrics)` with the config's
    hyperparameters bound.
  """
  step_fn = functools.partial(train_step, model=model,
                              static=static_fields(config))
  replicated = devices.replicated(mesh)
  jitted = jax.jit(step_fn,
                   in_shardings=(replicated, devices.batch_sharded(mesh),
                                 replicated, replicated),
                   out_shardings=(replicated, replicated),
                   donate_argnums=0)
  hparams = jax.device_put(hyperparameters(config), replicated)
  return lambda state, images, noise_key: jitted(state, images, noise_key,
                                                 hparams)


def abstract_train_state(model, mesh, objective_name: str) -> TrainState:
  """Shapes, dtypes and shardings of the state, without computing it."""
  init_key, _ = rng_streams(0)  # Shapes do not depend on the seed.
  shapes = jax.eval_shape(
      lambda: create_train_state(model, init_key, objective_name))
  replicated = devices.replicated(mesh)
  return jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                        sharding=replicated), shapes)


def initial_train_state(model, mesh, *, seed: int,
                        objective_name: str) -> TrainState:
  """A fresh state at step 0 of run `seed`, replicated over `mesh`."""
  init_key, _ = rng_streams(seed)
  return jax.jit(functools.partial(create_train_state, model,
                                   objective_name=objective_name),
                 out_shardings=devices.replicated(mesh))(init_key)
