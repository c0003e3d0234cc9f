"""Burgess et al. (2018) Fig. 4a: reading each latent, and the command end to end."""

import json
import os

import numpy as np
import pytest

import configs.burgess_fig4a
from bvae_jax import experiment_config
from bvae_jax.figures import drawing
from bvae_jax.metrics import mig
from bvae_jax.reproductions import burgess_fig4a

FACTOR_NAMES = ('shape', 'pos_x', 'pos_y')


def _codes():
  """z0 = pos_x, z1 = shape, z2 = pos_y but inactive, z3 = pos_x + noise."""
  random_state = np.random.RandomState(0)
  factors = np.stack([random_state.randint(3, size=5000),
                      random_state.randint(32, size=5000),
                      random_state.randint(32, size=5000)], axis=1)
  means = np.stack([factors[:, 1] / 8.0, factors[:, 0] * 1.0,
                    factors[:, 2] / 8.0,
                    factors[:, 1] / 8.0 + random_state.normal(0, 3, 5000)],
                   axis=1)
  kl = np.array([3.0, 2.0, 0.01, 1.0])
  return means, kl, factors


def test_latents_read_as_their_factor_and_inactive_ones_as_unused():
  means, kl, factors = _codes()
  reading = burgess_fig4a.read_latents(means, kl, factors, FACTOR_NAMES, 20)
  assert [r['latent'] for r in reading['latents']] == [0, 1, 3, 2]  # By KL.
  assert [r['reading'] for r in reading['latents']] == [
      'pos_x', 'shape', 'pos_x', 'unused']
  # z2 copies pos_y exactly, yet at KL 0.01 it is unused: pos_y has no latent.
  assert reading['latents'][3]['normalized_mi']['pos_y'] > 0.8
  assert {name: f['latent'] for name, f in reading['factors'].items()} == {
      'shape': 1, 'pos_x': 0, 'pos_y': None}
  assert reading['num_factors_with_own_latent'] == 2
  assert reading['num_unused_latents'] == 1
  # The noisy copy of pos_x carries less of it than z0 does.
  assert (reading['latents'][2]['normalized_mi']['pos_x']
          < reading['factors']['pos_x']['normalized_mi'])
  # MIG is disentanglement_lib's, on the same codes (bvae_jax/metrics/mig.py).
  assert reading['mig'] == pytest.approx(mig.mig(means, factors)['discrete_mig'])
  assert burgess_fig4a.row_label(reading['latents'][0]) == (
      f"z0 KL 3.00: pos_x ({reading['factors']['pos_x']['normalized_mi']:.2f})")
  assert burgess_fig4a.row_label(reading['latents'][3]) == 'z2 KL 0.01: unused'


def test_no_active_latent_gives_no_factor_a_latent():
  means, _, factors = _codes()
  reading = burgess_fig4a.read_latents(means, np.full(4, 0.001), factors,
                                       FACTOR_NAMES, 20)
  assert reading['num_factors_with_own_latent'] == 0
  assert reading['num_unused_latents'] == 4
  assert {r['reading'] for r in reading['latents']} == {'unused'}


def test_traversal_row_labels_must_match_the_rows(tmp_path):
  images = np.zeros((3, 8, 8, 1), np.float32)
  with pytest.raises(ValueError, match='row_labels has 1 labels for 2'):
    drawing.save_traversal_figure(
        str(tmp_path / 't.png'), images, images, np.zeros((2, 3, 8, 8, 1)),
        np.array([1, 0]), np.array([0.5, 1.0]), 3.0, 0, row_labels=['z1'])


@pytest.mark.slow
def test_the_command_trains_and_writes_the_reading_and_figures(tmp_path):
  config = experiment_config.resolve(configs.burgess_fig4a.get_config('quick'))
  assert config.dataset == 'color_dsprites' and config.num_channels == 3
  assert (config.objective, config.gamma, config.capacity_max) == (
      'capacity', 1000.0, 25.0)
  config.dataset = 'color_dsprites/tiny'
  config.data_dir = str(tmp_path / 'tfds')
  config.batch_size = 8
  config.num_train_steps = 4
  config.capacity_anneal_steps = 2
  config.checkpoint_every_steps = 4
  config.figure_every_steps = 4
  config.sweep.evaluate = False
  config.eval.num_train = 300
  workdir = str(tmp_path / 'fig4a')
  burgess_fig4a.sweep.train_sweep(config, workdir)
  summary = burgess_fig4a.summarise(config, workdir)
  assert list(summary['members']) == ['seed=0']
  member = summary['members']['seed=0']
  assert member['step'] == 4 and len(member['latents']) == 10
  # Eight factors: dSprites' five and the three colour levels.
  assert list(member['factors']) == ['shape', 'scale', 'orientation', 'pos_x',
                                     'pos_y', 'red', 'green', 'blue']
  kls = [r['kl'] for r in member['latents']]
  assert kls == sorted(kls, reverse=True)
  assert summary['paper_reading'][:2] == ['pos_y', 'pos_x']
  with open(os.path.join(workdir, 'fig4a_summary.json')) as f:
    assert json.load(f) == json.loads(json.dumps(summary))
  for name in ('fig4a_traversals_seed=0.png',
               'fig4a_mutual_information_seed=0.png'):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
