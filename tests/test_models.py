"""Tests of the Burgess et al. (2018) encoder, decoder and VAE."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bvae_jax.models import conv_layers
from bvae_jax.models import vae

LATENT_DIM = 10


def _conv_params(in_channels, out_channels):
  """Weights + biases of one 4×4 (transposed) convolution."""
  return 4 * 4 * in_channels * out_channels + out_channels


def _dense_params(in_features, out_features):
  return in_features * out_features + out_features


def _expected_param_count(num_channels, latent_dim):
  """Parameter count of the architecture in appendix A.1, layer by layer."""
  encoder = (
      _conv_params(num_channels, 32)
      + 3 * _conv_params(32, 32)
      + _dense_params(4 * 4 * 32, 256)
      + _dense_params(256, 256)
      + _dense_params(256, 2 * latent_dim))
  decoder = (
      _dense_params(latent_dim, 256)
      + _dense_params(256, 256)
      + _dense_params(256, 4 * 4 * 32)
      + 3 * _conv_params(32, 32)
      + _conv_params(32, num_channels))
  return encoder + decoder


def _init(model, num_channels, batch=2):
  images = jnp.zeros((batch, 64, 64, num_channels))
  return model.init(jax.random.PRNGKey(0), images, jax.random.PRNGKey(1))


def _param_count(params):
  return sum(leaf.size for leaf in jax.tree.leaves(params))


@pytest.mark.slow
@pytest.mark.parametrize('num_channels', [1, 3])
def test_parameter_count_matches_the_paper(num_channels):
  params = _init(vae.VAE(LATENT_DIM, num_channels), num_channels)
  assert _param_count(params) == _expected_param_count(num_channels, LATENT_DIM)


def test_hand_count_is_the_known_total_for_dsprites():
  # Encoder: 544 + 3·16,416 + 131,328 + 65,792 + 5,140 = 252,052.
  # Decoder: 2,816 + 65,792 + 131,584 + 3·16,416 + 513 = 249,953.
  assert _expected_param_count(1, 10) == 502_005


@pytest.mark.slow
def test_parameter_tree_does_not_depend_on_conv_impl():
  shapes = {
      impl: jax.tree.map(jnp.shape, _init(vae.VAE(LATENT_DIM, 3, impl), 3))
      for impl in conv_layers.CONV_IMPLS
  }
  for impl, tree in shapes.items():
    assert tree == shapes['lax'], impl


@pytest.mark.slow
@pytest.mark.parametrize('num_channels', [1, 3])
def test_vae_output_shapes(num_channels):
  model = vae.VAE(LATENT_DIM, num_channels)
  params = _init(model, num_channels)
  images = jax.random.uniform(jax.random.PRNGKey(2), (3, 64, 64, num_channels))
  outputs = model.apply(params, images, jax.random.PRNGKey(3))
  chex.assert_shape(outputs.decoder_output, (3, 64, 64, num_channels))
  chex.assert_shape([outputs.mean, outputs.log_var, outputs.z], (3, LATENT_DIM))
  chex.assert_tree_all_finite(outputs)


@pytest.mark.slow
def test_encode_and_decode_methods():
  model = vae.VAE(LATENT_DIM, 1)
  params = _init(model, 1)
  images = jax.random.uniform(jax.random.PRNGKey(2), (5, 64, 64, 1))
  mean, log_var = model.apply(params, images, method=vae.VAE.encode)
  chex.assert_shape([mean, log_var], (5, LATENT_DIM))
  decoded = model.apply(params, mean, method=vae.VAE.decode)
  chex.assert_shape(decoded, (5, 64, 64, 1))


@pytest.mark.slow
def test_call_uses_reparameterised_sample_with_log_variance():
  model = vae.VAE(LATENT_DIM, 1)
  params = _init(model, 1)
  images = jax.random.uniform(jax.random.PRNGKey(2), (4, 64, 64, 1))
  noise_rng = jax.random.PRNGKey(7)
  outputs = model.apply(params, images, noise_rng)
  # z = mean + standard deviation · ε with standard deviation = exp(log_var / 2).
  noise = jax.random.normal(noise_rng, outputs.mean.shape)
  z = outputs.mean + jnp.exp(0.5 * outputs.log_var) * noise
  np.testing.assert_allclose(outputs.z, z, rtol=1e-6, atol=1e-6)
  expected = model.apply(params, z, method=vae.VAE.decode)
  np.testing.assert_allclose(outputs.decoder_output, expected, rtol=1e-5,
                             atol=1e-5)


def test_standalone_encoder_and_decoder():
  images = jnp.zeros((2, 64, 64, 3))
  encoder = vae.Encoder(latent_dim=6)
  mean, log_var = encoder.apply(encoder.init(jax.random.PRNGKey(0), images),
                                images)
  chex.assert_shape([mean, log_var], (2, 6))
  decoder = vae.Decoder(num_channels=3)
  z = jnp.zeros((2, 6))
  outputs = decoder.apply(decoder.init(jax.random.PRNGKey(0), z), z)
  chex.assert_shape(outputs, (2, 64, 64, 3))


@pytest.mark.parametrize('impl', [impl for impl in conv_layers.CONV_IMPLS
                                  if impl != 'lax'])
def test_fast_conv_impls_compute_the_reference_model(impl):
  params = _init(vae.VAE(LATENT_DIM, 3, 'lax'), 3)
  images = jax.random.uniform(jax.random.PRNGKey(2), (3, 64, 64, 3))
  noise_rng = jax.random.PRNGKey(3)
  expected = vae.VAE(LATENT_DIM, 3, 'lax').apply(params, images, noise_rng)
  actual = vae.VAE(LATENT_DIM, 3, impl).apply(params, images, noise_rng)
  for got, want in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-4,
                               atol=1e-4 * float(jnp.max(jnp.abs(want))))


def test_default_conv_impl_is_the_fast_one():
  assert vae.VAE(LATENT_DIM, 1).conv_impl == conv_layers.DEFAULT_CONV_IMPL
  assert conv_layers.DEFAULT_CONV_IMPL != 'lax'


def test_wrong_image_size_is_rejected():
  model = vae.VAE(LATENT_DIM, 1)
  with pytest.raises(ValueError, match='64'):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)),
               jax.random.PRNGKey(1))
