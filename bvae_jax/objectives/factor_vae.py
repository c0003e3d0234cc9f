"""FactorVAE (Kim & Mnih 2018): the ELBO plus γ · TC, TC told by a discriminator.

As disentanglement_lib's `FactorVAE` (methods/unsupervised/vae.py, with
`shuffle_codes` and methods/shared/architectures.py `fc_discriminator`; the
optimisers of config/unsupervised_study_v1/model_configs/shared.gin):

* The VAE minimises E[−log p(x|z)] + KL + γ · TC, with TC = the batch mean of
  logit₀ − logit₁ of the discriminator (`factor_discriminator.FactorDiscriminator`) on the
  sampled z. The gradient reaches the encoder through the discriminator,
  whose parameters the VAE's optimiser does not change.
* The discriminator minimises −(½ · mean log p₀(z) + ½ · mean log p₁(z̃)), z̃
  being z with each latent column permuted independently within the batch and
  p the softmax of its logits clipped to [1e-6, 1 − 1e-6]. It has its own
  Adam (lr 1e-4, β₁ 0.5, β₂ 0.9, ε 1e-8).
* Both updates come from the same forward pass: the discriminator learns on
  the z that the VAE's loss used.

The discriminator and its optimiser state are this objective's auxiliary
state (`init_auxiliary`, `update_auxiliary`); the train step carries them in
`step.TrainState.auxiliary`, so the step stays one pure, vmappable function.
"""

from typing import Any, Mapping

from flax import struct
import jax
import jax.numpy as jnp
import optax

from bvae_jax.models import factor_discriminator
from bvae_jax import objectives
from bvae_jax.objectives import elbo

HYPERPARAMETERS = ('factor_vae_gamma',)
STATIC_FIELDS = ()
# γ = 40: inside disentanglement_lib's study grid {10, 20, 30, 40, 50, 100}.
CONFIG_DEFAULTS = {'factor_vae_gamma': 40.0}

# The discriminator's Adam (disentanglement_lib shared.gin:
# discriminator_optimizer.optimizer_fn = @AdamOptimizer, beta1 = 0.5,
# beta2 = 0.9, learning_rate = 0.0001; TensorFlow's epsilon 1e-8).
DISCRIMINATOR_LEARNING_RATE = 1e-4
DISCRIMINATOR_ADAM_B1 = 0.5
DISCRIMINATOR_ADAM_B2 = 0.9
DISCRIMINATOR_ADAM_EPS = 1e-8
# Probabilities are clipped to [ε, 1 − ε] before the log (fc_discriminator).
PROBABILITY_CLIP = 1e-6

DISCRIMINATOR = factor_discriminator.FactorDiscriminator()


class DiscriminatorState(struct.PyTreeNode):
  """The discriminator's parameters and its Adam state."""
  params: Any
  opt_state: Any


def validate(config) -> None:
  objectives.require_nonnegative(config, 'factor_vae_gamma')


def discriminator_optimizer() -> optax.GradientTransformation:
  return optax.adam(DISCRIMINATOR_LEARNING_RATE, b1=DISCRIMINATOR_ADAM_B1,
                    b2=DISCRIMINATOR_ADAM_B2, eps=DISCRIMINATOR_ADAM_EPS)


def init_auxiliary(latent_dim: int, key: jax.Array) -> DiscriminatorState:
  """A fresh discriminator for codes of `latent_dim`, and its Adam state."""
  params = DISCRIMINATOR.init(key, jnp.zeros((1, latent_dim)))['params']
  return DiscriminatorState(params=params,
                            opt_state=discriminator_optimizer().init(params))


def shuffle_codes(z: jax.Array, key: jax.Array) -> jax.Array:
  """z with each column permuted independently along the batch.

  Samples of ∏_l q(z_l) from samples of q(z) (disentanglement_lib's
  `shuffle_codes`, one `tf.random_shuffle` per latent).
  """
  keys = jax.random.split(key, z.shape[1])
  return jax.vmap(jax.random.permutation, in_axes=(0, 1), out_axes=1)(keys, z)


def clipped_probabilities(logits: jax.Array) -> jax.Array:
  """softmax(logits) clipped to [1e-6, 1 − 1e-6], as `fc_discriminator`."""
  return jnp.clip(jax.nn.softmax(logits, axis=-1), PROBABILITY_CLIP,
                  1.0 - PROBABILITY_CLIP)


def total_correlation(logits: jax.Array) -> jax.Array:
  """The density-ratio estimate of TC: mean over the batch of logit₀ − logit₁."""
  return jnp.mean(logits[:, 0] - logits[:, 1])


def discriminator_loss(logits_z: jax.Array,
                       logits_shuffled: jax.Array) -> jax.Array:
  """−(½ · mean log p₀(z) + ½ · mean log p₁(z̃)) (disentanglement_lib's
  `discr_vae_loss`, negated because its optimiser minimises the negation)."""
  return -(0.5 * jnp.mean(jnp.log(clipped_probabilities(logits_z)[:, 0])) +
           0.5 * jnp.mean(jnp.log(clipped_probabilities(logits_shuffled)[:, 1])))


def loss(outputs, images, step, hparams, static, auxiliary: DiscriminatorState):
  """See the package docstring; terms add `total_correlation`."""
  del step
  terms = elbo.elbo_terms(outputs, images, hparams, static)
  logits = DISCRIMINATOR.apply({'params': auxiliary.params}, outputs.z)
  tc = total_correlation(logits)
  total = (terms['reconstruction'] + terms['kl_total'] +
           hparams['factor_vae_gamma'] * tc)
  return total, {'loss': total, **terms, 'total_correlation': tc}


def update_auxiliary(auxiliary: DiscriminatorState, z: jax.Array,
                     key: jax.Array, hparams: Mapping[str, jax.Array],
                     static: Mapping[str, str]
                     ) -> tuple[DiscriminatorState, dict[str, jax.Array]]:
  """One Adam step of the discriminator on this batch's codes.

  Args:
    auxiliary: the discriminator's state.
    z: (N, L) the posterior samples the VAE's loss used (no gradient flows
      back to the VAE from here).
    key: draws the column permutations.
    hparams, static: the step's (unused: the discriminator's optimiser is
      disentanglement_lib's fixed one).

  Returns:
    The new state and {'discriminator_loss', 'discriminator_accuracy'}: the
    loss before the step, and the fraction of the 2N codes (z and z̃) that it
    classified correctly.
  """
  del hparams, static
  z = jax.lax.stop_gradient(z)
  shuffled = shuffle_codes(z, key)

  def loss_fn(params):
    logits_z = DISCRIMINATOR.apply({'params': params}, z)
    logits_shuffled = DISCRIMINATOR.apply({'params': params}, shuffled)
    accuracy = 0.5 * (jnp.mean(logits_z[:, 0] > logits_z[:, 1]) +
                      jnp.mean(logits_shuffled[:, 1] > logits_shuffled[:, 0]))
    return discriminator_loss(logits_z, logits_shuffled), accuracy

  (value, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      auxiliary.params)
  updates, opt_state = discriminator_optimizer().update(
      grads, auxiliary.opt_state, auxiliary.params)
  return (DiscriminatorState(params=optax.apply_updates(auxiliary.params,
                                                        updates),
                             opt_state=opt_state),
          {'discriminator_loss': value, 'discriminator_accuracy': accuracy})
