"""FactorVAE's discriminator (Kim & Mnih 2018), as disentanglement_lib builds it."""

import flax.linen as nn
import jax


class FactorDiscriminator(nn.Module):
  """FactorVAE's discriminator: is a code z a posterior sample or permuted?

  disentanglement_lib's `fc_discriminator` (methods/shared/architectures.py),
  used by its `FactorVAE` (Kim & Mnih 2018): 6 dense layers of 1000 units with
  leaky ReLU of slope 0.2 (TensorFlow's `tf.nn.leaky_relu` default; JAX's is
  0.01), then 2 logits. Kernels are Glorot-uniform and biases zero, as
  `tf.layers.dense` initialises them.

  Attributes:
    hidden_layers: number of hidden dense layers.
    hidden_units: units per hidden layer.
  """
  hidden_layers: int = 6
  hidden_units: int = 1000

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Returns (N, 2) logits: [posterior sample, dimension-permuted sample].

    Args:
      z: (N, L) latent codes.
    """
    dense = lambda units: nn.Dense(units,
                                   kernel_init=nn.initializers.glorot_uniform())
    hidden = z
    for _ in range(self.hidden_layers):
      hidden = nn.leaky_relu(dense(self.hidden_units)(hidden),
                             negative_slope=0.2)
    return dense(2)(hidden)
