"""Collapse rate from sweeps' logged KL and information."""

import json
import os

import pytest

from bvae_jax.core import metric_logging
from bvae_jax.reproductions import collapse_rate


def write_member(root, name, kl_and_information):
  directory = os.path.join(root, 'members', name)
  writer = metric_logging.MetricWriter(directory)
  for index, (kl, information) in enumerate(kl_and_information):
    writer.write_scalars(50 * (index + 1), {
        'kl_total': kl, 'information': information,
        'reconstruction': 500.0 - 10 * information})
  writer.close()


@pytest.fixture
def sweep_dir(tmp_path):
  root = tmp_path / 'g1000_r40000'
  os.makedirs(root)
  json.dump({'gamma': 1000.0, 'capacity_anneal_steps': 40000,
             'capacity_start': 0.0}, open(root / 'config.json', 'w'))
  # seed 0 learns; seed 1 collapses at step 100 and stays so (as issue 25's
  # seed 7: KL tracks C, information ≈ 0).
  write_member(str(root), 'seed=0', [(0.2, 0.0)] + [(1.0, 0.9)] * 6)
  write_member(str(root), 'seed=1', [(0.2, 0.0)] + [(1.0, 0.01)] * 6)
  return str(root)


def test_a_collapsed_member_is_counted_and_the_rate_is_the_share(sweep_dir,
                                                                  tmp_path):
  settings = collapse_rate.write_report([sweep_dir], str(tmp_path / 'out'))
  entry = settings['g1000_r40000']
  assert entry['gamma'] == 1000.0 and entry['ramp_steps'] == 40000
  members = entry['members']
  assert members['seed=0']['collapsed'] is False
  assert members['seed=0']['first_collapsed_step'] is None
  assert members['seed=1']['collapsed'] is True
  assert members['seed=1']['first_collapsed_step'] == 100
  assert members['seed=1']['information'] == pytest.approx(0.01)
  assert (entry['num_collapsed'], entry['rate']) == (1, 0.5)
  table = open(tmp_path / 'out' / 'collapse_rate.md').read()
  assert '| g1000_r40000 | 1000 | 40,000 | 0 | 2 | 1 | 0.50 |' in table


def test_a_member_without_information_is_refused(sweep_dir):
  directory = os.path.join(sweep_dir, 'members', 'seed=2')
  writer = metric_logging.MetricWriter(directory)
  writer.write_scalars(50, {'kl_total': 1.0})
  writer.close()
  with pytest.raises(ValueError, match='seed=2 logged no `information`'):
    collapse_rate.setting_summary(sweep_dir)
