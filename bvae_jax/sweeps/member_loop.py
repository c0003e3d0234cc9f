"""The 'loop' member layout: one compiled step, called once per member.

Each member trains as its solo run does: its state replicated and its batch
split over every device, by one jitted program that all members share
(compiled once). While the sweep trains, the members' states are kept apart,
a tuple of TrainStates, so that a call updates one member's buffers in place
(donated) and copies nothing of the others'; they are stacked along the member
axis only for a checkpoint, so a checkpoint is the same whichever layout wrote
it, and the SweepState that `sweep.train_sweep` returns is the stacked one.

Why it exists: on a CPU with few cores a single model data-parallel over all
host devices ran 1.33-1.45x faster than over half of them, while the 'vmap'
and 'map' layouts give each member a share of the devices. Where each member
group holds one member (2 members on 2 cores), 'map' ran 0.88x the speed of
the members trained one after another and this layout 0.98x
(docs/benchmarks.md, "The `loop` layout"). It does the computation of the
sequential runs, in one process, with the batch read once per step when
members share it.

The members' calls are dispatched asynchronously; `RunAhead` bounds them per
member call, not per sweep step, so that M members never put more than
`run_ahead.DEFAULT_MAX_IN_FLIGHT` + 1 computations in flight per device
(XLA:CPU aborts past 32; run_ahead.py).
"""

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from bvae_jax.training import run_ahead


def unstack_members(stacked: Any, count: int, sharding) -> tuple[Any, ...]:
  """`count` pytrees, member i's leaves `leaf[i]`, each placed with `sharding`."""
  split = jax.jit(lambda tree: tuple(jax.tree.map(lambda leaf: leaf[i], tree)
                                     for i in range(count)),
                  out_shardings=sharding)
  return split(stacked)


def stack_members(members: Sequence[Any], sharding) -> Any:
  """The members' pytrees stacked along a new leading axis, with `sharding`.

  A new array: the members' own buffers stay valid (they are donated to their
  next step, while Orbax may still be writing the stacked copy).
  """
  return jax.jit(lambda trees: jax.tree.map(lambda *leaves: jnp.stack(leaves),
                                            *trees),
                 out_shardings=sharding)(tuple(members))


def make_loop_step(member_update: Callable, *, noise_keys: Sequence[jax.Array],
                   hparams: Sequence[Mapping[str, jax.Array]],
                   state_sharding, images_sharding, shared_batches: bool,
                   max_in_flight: int = run_ahead.DEFAULT_MAX_IN_FLIGHT
                   ) -> Callable:
  """The sweep step of the 'loop' layout.

  Args:
    member_update: `(member, failed_at, images, noise_key, hparams, step) ->
      (member, failed_at, metrics)`, one member's step (non-finite updates
      dropped), with the model and static fields bound.
    noise_keys: each member's noise key data (`jax.random.key_data`).
    hparams: each member's `step_lib.hyperparameters`, as arrays.
    state_sharding: one member's state placement (replicated over the mesh).
    images_sharding: one batch's placement (split over the data axis).
    shared_batches: `images` is one batch for all members, else a tuple of
      one batch per member.
    max_in_flight: member steps that may be dispatched but unfinished.

  Returns:
    `step_fn(state, images) -> (state, metrics)` on the unstacked state (a
    SweepState whose `members` and `failed_at` are tuples), with `metrics` a
    tuple of each member's metrics.
  """
  jitted = jax.jit(
      member_update,
      in_shardings=(state_sharding, state_sharding, images_sharding,
                    state_sharding, state_sharding, state_sharding),
      out_shardings=(state_sharding, state_sharding, state_sharding),
      donate_argnums=0)
  in_flight = run_ahead.RunAhead(max_in_flight)

  def step_fn(state, images):
    members, failed_at, metrics = [], [], []
    for index, (member, member_failed_at) in enumerate(
        zip(state.members, state.failed_at)):
      member_images = images if shared_batches else images[index]
      new_member, new_failed_at, member_metrics = jitted(
          member, member_failed_at, member_images, noise_keys[index],
          hparams[index], state.step)
      in_flight.admit(member_metrics['loss'])
      members.append(new_member)
      failed_at.append(new_failed_at)
      metrics.append(member_metrics)
    return state.replace(step=state.step + 1, members=tuple(members),
                         failed_at=tuple(failed_at)), tuple(metrics)

  return step_fn
