"""Equivalence of every strided-conv formulation with the lax reference.

Each fast formulation in `bvae_jax.models.conv_layers` must compute the same function
as `lax.conv_general_dilated` (stride 2, padding 1) or `lax.conv_transpose`
(stride 2, flax 'SAME' padding), and have the same gradients with respect to
the input and the kernel. Tolerances are float32 round-off of sums over at
most 16·32 = 512 products: 1e-5 relative, plus 1e-5 of the result's largest
magnitude as absolute slack for entries near zero.
"""

import itertools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bvae_jax.models import conv_layers

FAST_IMPLS = [impl for impl in conv_layers.CONV_IMPLS if impl != 'lax']

# (batch, height, width, in_channels, out_channels): odd batches, single and
# RGB channels on either side, non-square images.
SHAPES = [
    (1, 8, 8, 1, 32),
    (3, 4, 4, 32, 32),
    (5, 8, 4, 32, 3),
    (3, 4, 6, 3, 1),
    (1, 2, 2, 32, 1),
    (2, 3, 5, 1, 3),  # Odd sizes: only the transposed conv accepts them.
]


def _assert_close(actual, expected, name):
  expected = np.asarray(expected)
  scale = float(np.max(np.abs(expected)))
  np.testing.assert_allclose(
      np.asarray(actual), expected, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


def _random_operands(shape, seed):
  batch, height, width, in_channels, out_channels = shape
  input_key, kernel_key, cotangent_key = jax.random.split(
      jax.random.PRNGKey(seed), 3)
  inputs = jax.random.normal(input_key, (batch, height, width, in_channels))
  kernel = jax.random.normal(kernel_key, (4, 4, in_channels, out_channels))
  return inputs, kernel, cotangent_key


def _check_against_reference(function, reference, inputs, kernel, cotangent_key):
  expected, reference_vjp = jax.vjp(reference, inputs, kernel)
  actual, actual_vjp = jax.vjp(function, inputs, kernel)
  chex.assert_equal_shape([actual, expected])
  _assert_close(actual, expected, 'output')
  cotangent = jax.random.normal(cotangent_key, expected.shape)
  for name, got, want in zip(('d_inputs', 'd_kernel'), actual_vjp(cotangent),
                             reference_vjp(cotangent)):
    _assert_close(got, want, name)


# The strided conv is defined for even sizes only (odd ones are rejected, see
# test_odd_input_size_is_rejected_by_fast_strided_conv).
EVEN_SHAPES = [shape for shape in SHAPES if not (shape[1] % 2 or shape[2] % 2)]


@pytest.mark.parametrize(
    'impl,shape', list(itertools.product(FAST_IMPLS, EVEN_SHAPES)))
def test_strided_conv_matches_lax_in_value_and_gradients(impl, shape):
  inputs, kernel, cotangent_key = _random_operands(shape, seed=len(impl))
  _check_against_reference(
      jax.jit(conv_layers.STRIDED_CONV_IMPLS[impl]),
      conv_layers.strided_conv_lax, inputs, kernel, cotangent_key)


@pytest.mark.parametrize(
    'impl,shape', list(itertools.product(FAST_IMPLS, SHAPES)))
def test_strided_conv_transpose_matches_lax_in_value_and_gradients(impl, shape):
  inputs, kernel, cotangent_key = _random_operands(shape, seed=len(impl) + 1)
  _check_against_reference(
      jax.jit(conv_layers.STRIDED_CONV_TRANSPOSE_IMPLS[impl]),
      conv_layers.strided_conv_transpose_lax, inputs, kernel, cotangent_key)


def test_reference_halves_and_doubles_spatial_size():
  inputs = jnp.ones((2, 8, 6, 3))
  kernel = jnp.ones((4, 4, 3, 5))
  chex.assert_shape(conv_layers.strided_conv_lax(inputs, kernel), (2, 4, 3, 5))
  chex.assert_shape(
      conv_layers.strided_conv_transpose_lax(inputs, kernel), (2, 16, 12, 5))


@pytest.mark.parametrize('full', [False, True])
@pytest.mark.parametrize('function,shape', [
    (conv_layers.shifted_windows, (2, 5, 4, 3)),
    (conv_layers.shifted_sum, (2, 5, 4, 2, 2, 3)),
])
def test_custom_vjps_are_the_adjoints(function, shape, full):
  # Both are linear, so their VJP must be jax's linear transpose of the same
  # computation evaluated without the custom rule.
  inputs = jax.random.normal(jax.random.PRNGKey(0), shape)
  outputs, vjp = jax.vjp(lambda x: function(x, full), inputs)
  cotangent = jax.random.normal(jax.random.PRNGKey(1), outputs.shape)
  undecorated = function.fun
  (expected,) = jax.linear_transpose(lambda x: undecorated(x, full),
                                     inputs)(cotangent)
  (actual,) = vjp(cotangent)
  _assert_close(actual, expected, 'adjoint')


def test_full_windows_are_valid_windows_of_the_padded_input():
  inputs = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 5))
  padded = jnp.pad(inputs, ((0, 0), (1, 1), (1, 1), (0, 0)))
  np.testing.assert_array_equal(conv_layers.shifted_windows(inputs, True),
                                conv_layers.shifted_windows(padded, False))


def test_space_to_depth_layout_and_inverse():
  images = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  blocks = conv_layers.space_to_depth(images)
  chex.assert_shape(blocks, (2, 2, 3, 12))
  # Channel (dh, dw, c) of block (p, q) is pixel (2p + dh, 2q + dw), channel c.
  np.testing.assert_array_equal(blocks[1, 1, 2, (1 * 2 + 0) * 3 + 2],
                                images[1, 3, 4, 2])
  np.testing.assert_array_equal(conv_layers.depth_to_space(blocks), images)


@pytest.mark.parametrize('impl', conv_layers.CONV_IMPLS)
def test_strided_conv_module_is_interchangeable_with_nn_conv(impl):
  images = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 3))
  rng = jax.random.PRNGKey(1)
  reference = nn.Conv(16, (4, 4), (2, 2), padding='SAME')
  module = conv_layers.StridedConv(16, impl=impl)
  reference_params = reference.init(rng, images)
  params = module.init(rng, images)
  # Same names, shapes and initial values: checkpoints load either way.
  chex.assert_trees_all_equal(params, reference_params)
  _assert_close(module.apply(reference_params, images),
                reference.apply(reference_params, images), impl)


@pytest.mark.parametrize('impl', conv_layers.CONV_IMPLS)
def test_strided_conv_transpose_module_is_interchangeable_with_nn(impl):
  inputs = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 32))
  rng = jax.random.PRNGKey(1)
  reference = nn.ConvTranspose(3, (4, 4), (2, 2), padding='SAME')
  module = conv_layers.StridedConvTranspose(3, impl=impl)
  reference_params = reference.init(rng, inputs)
  params = module.init(rng, inputs)
  chex.assert_trees_all_equal(params, reference_params)
  outputs = module.apply(reference_params, inputs)
  chex.assert_shape(outputs, (3, 8, 8, 3))
  _assert_close(outputs, reference.apply(reference_params, inputs), impl)


def test_unknown_impl_is_rejected():
  with pytest.raises(ValueError, match='conv_impl'):
    conv_layers.StridedConv(4, impl='winograd').init(
        jax.random.PRNGKey(0), jnp.ones((1, 4, 4, 1)))


def test_odd_input_size_is_rejected_by_fast_strided_conv():
  with pytest.raises(ValueError, match='even'):
    conv_layers.STRIDED_CONV_IMPLS['matmul'](jnp.ones((1, 5, 4, 1)),
                                             jnp.ones((4, 4, 1, 2)))


def test_mismatched_kernel_is_rejected():
  with pytest.raises(ValueError, match='input channels'):
    conv_layers.STRIDED_CONV_TRANSPOSE_IMPLS['matmul'](jnp.ones((1, 4, 4, 3)),
                                                       jnp.ones((4, 4, 1, 2)))
