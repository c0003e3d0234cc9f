"""Reading TensorBoard event files in tests (no TensorFlow or tensorboard needed)."""

from bvae_jax.core import metric_logging


def read_events(logdir):
  """Every Event of `logdir`'s event files, as the library reads them."""
  return list(metric_logging.read_events(str(logdir)))


def read_scalars(logdir, tags):
  """{tag: {step: value}} of the scalar summaries named in `tags`."""
  found = metric_logging.read_scalars(logdir)
  return {tag: found.get(tag, {}) for tag in tags}
