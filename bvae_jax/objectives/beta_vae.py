"""β-VAE (Higgins et al. 2017, Eq. 4; Burgess et al. 2018, Eq. 5): β = 1 is the VAE.

L = E[−log p(x|z)] + β · KL(q(z|x) ‖ p(z)), minimised; disentanglement_lib's
`BetaVAE` (methods/unsupervised/vae.py: regularizer = β · kl_loss).
"""

from bvae_jax import objectives
from bvae_jax.objectives import elbo

HYPERPARAMETERS = ('beta',)
STATIC_FIELDS = ()
CONFIG_DEFAULTS = {}


def validate(config) -> None:
  objectives.require_nonnegative(config, 'beta')


def loss(outputs, images, step, hparams, static):
  """See the package docstring; terms: the ELBO's."""
  del step  # The β-VAE objective does not change during training.
  terms = elbo.elbo_terms(outputs, images, hparams, static)
  total = terms['reconstruction'] + hparams['beta'] * terms['kl_total']
  return total, {'loss': total, **terms}
