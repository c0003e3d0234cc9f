"""The tiny training config the tests share: a few steps on dsprites/tiny."""

from bvae_jax import config_defaults


def tiny_config(data_dir, objective='capacity', **overrides):
  """A 6-step run of batch 8 on `dsprites_procedural/tiny` in `data_dir`.

  Evaluation samples are small too: the metric definitions are tested in
  tests/test_metric_*.py, these configs only have to run them.
  """
  config = config_defaults.base_config()
  config_defaults.set_objective(config, objective)
  config.dataset = 'dsprites_procedural/tiny'
  config.data_dir = data_dir
  config.batch_size = 8
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.figure_every_steps = 1000
  config.capacity_anneal_steps = 100
  config.eval.num_train = 300
  config.eval.num_test = 150
  config.eval.batch_size = 8
  config.eval.num_variance_estimate = 300
  config.eval.encode_batch_size = 256
  config.update(overrides)
  return config


def open_configured(config):
  """Opens the data set `config` names, as a run does."""
  from bvae_jax.datasets import registry  # pylint: disable=g-import-not-at-top
  return registry.open_dataset(config.dataset,
                               config.get('dataset_source', 'auto'),
                               config.get('data_dir'))
