"""β = 50 under two likelihoods: collapse from logged information, metrics."""

import json
import os

import pytest

from bvae_jax.core import metric_logging
from bvae_jax.reproductions import beta50_likelihood


def write_member(root, name, information_per_latent, intervals=7):
  directory = os.path.join(root, 'members', name)
  writer = metric_logging.MetricWriter(directory)
  for index in range(intervals):
    # An early interval that differs, to check only the last ones count.
    scale = 5.0 if index == 0 else 1.0
    values = {'kl_total': scale * sum(information_per_latent) + 0.05,
              'information': scale * sum(information_per_latent),
              'reconstruction': 300.0 - index,
              'loss': 300.0 - index}  # Every run logs it.
    for latent, information in enumerate(information_per_latent):
      values[f'information_per_latent/z{latent}'] = scale * information
      values[f'kl_per_latent/z{latent}'] = scale * information + 0.005
    writer.write_scalars(100 * (index + 1), values)
  writer.close()


def write_sweep(root, likelihood, members):
  os.makedirs(root)
  json.dump({'likelihood': likelihood, 'gaussian_stddev': 0.5 ** 0.5,
             'num_train_steps': 700}, open(os.path.join(root, 'config.json'),
                                           'w'))
  rows = []
  for seed, (information, mig) in enumerate(members):
    name = f'beta=50,seed={seed}'
    write_member(root, name, information)
    rows.append({'member': name, 'seed': seed, 'beta': 50.0, 'status': 'ok',
                 'mig.discrete_mig': mig, 'beta_vae.eval_accuracy': 0.5,
                 'modularity_explicitness.modularity_score': 0.9})
  json.dump({'members': rows, 'summary': []},
            open(os.path.join(root, 'sweep_results.json'), 'w'))
  return str(root)


@pytest.fixture
def sweeps(tmp_path):
  gaussian = write_sweep(tmp_path / 'gaussian', 'gaussian', [
      ([0.001, 0.002, 0.0], 0.01),  # Nothing about the input: collapsed.
      ([0.0, 1.2, 0.05], 0.2)])  # One informative latent, z1.
  bernoulli = write_sweep(tmp_path / 'bernoulli', 'bernoulli', [
      ([1.4, 0.0, 1.5], 0.28), ([1.3, 0.3, 1.4], 0.25)])
  return [gaussian, bernoulli]


def test_collapse_is_no_informative_latent_over_the_last_intervals(sweeps,
                                                                   tmp_path):
  report = beta50_likelihood.write_report(sweeps, str(tmp_path / 'out'))
  gaussian, bernoulli = report['gaussian'], report['bernoulli']
  assert gaussian['likelihood'] == 'gaussian'
  assert gaussian['gaussian_stddev'] == pytest.approx(0.5 ** 0.5)
  assert bernoulli['gaussian_stddev'] is None
  assert gaussian['betas'] == [50.0]
  collapsed = gaussian['members']['beta=50,seed=0']
  assert collapsed['posterior_collapsed'] is True
  assert collapsed['informative_latents'] == []
  learned = gaussian['members']['beta=50,seed=1']
  assert learned['posterior_collapsed'] is False
  assert learned['informative_latents'] == [1]
  # The last 5 of 7 intervals: the first (5x) is left out.
  assert learned['information'] == pytest.approx(1.25)
  assert learned['information_per_latent'] == pytest.approx([0.0, 1.2, 0.05])
  assert learned['reconstruction'] == pytest.approx(300.0 - 4)
  assert learned['final_step'] == 700
  assert learned['metrics']['mig.discrete_mig'] == 0.2
  assert (gaussian['num_posterior_collapsed'],
          bernoulli['num_posterior_collapsed']) == (1, 0)
  table = open(tmp_path / 'out' / 'likelihood.md').read()
  assert ('| gaussian | gaussian | beta=50,seed=0 | yes | 0 | 0.05 | 0.00 | '
          '296.0 | 0.010 | 0.500 | 0.900 |') in table
  assert '| bernoulli | bernoulli | beta=50,seed=0 | no | 2 (z0, z2) |' in table
  assert ('- gaussian (gaussian): 1 of 2 seeds with a collapsed posterior'
          in table)
  assert json.load(open(tmp_path / 'out' / 'likelihood.json'))['bernoulli'][
      'num_posterior_collapsed'] == 0


def test_an_unfinished_sweep_is_named(sweeps):
  os.remove(os.path.join(sweeps[0], 'sweep_results.json'))
  with pytest.raises(FileNotFoundError, match='sweep_results.json is missing'):
    beta50_likelihood.sweep_summary(sweeps[0])


def test_a_member_without_information_per_latent_is_refused(sweeps):
  directory = os.path.join(sweeps[1], 'members', 'beta=50,seed=0')
  for name in os.listdir(directory):
    os.remove(os.path.join(directory, name))
  writer = metric_logging.MetricWriter(directory)
  writer.write_scalars(100, {'kl_total': 1.0, 'information': 0.5})
  writer.close()
  with pytest.raises(ValueError, match='logged no `information_per_latent`'):
    beta50_likelihood.sweep_summary(sweeps[1])


def write_published(root, name, seed, information_per_latent, mig,
                    intervals=7):
  """A member's results folder as --mode=publish --member writes it, with
  write_member's values."""
  folder = os.path.join(root, f'{name}_s{seed}')
  os.makedirs(folder)
  scales = [5.0] + [1.0] * (intervals - 1)
  history = {
      'step': [100 * (i + 1) for i in range(intervals)],
      'kl_total': [s * sum(information_per_latent) + 0.05 for s in scales],
      'information': [s * sum(information_per_latent) for s in scales],
      'reconstruction': [300.0 - i for i in range(intervals)],
      'information_per_latent': [[s * v for v in information_per_latent]
                                 for s in scales],
      'kl_per_latent': [[s * v + 0.005 for v in information_per_latent]
                        for s in scales]}
  metrics = {'700': {'metrics': {
      'mig': {'discrete_mig': mig}, 'beta_vae': {'eval_accuracy': 0.5},
      'modularity_explicitness': {'modularity_score': 0.9}}}}
  for file, value in (('history.json', history), ('metrics.json', metrics),
                      ('run.json', {'sweep': {'member': f'beta=50,seed={seed}',
                                              'num_members': 2}}),
                      ('config.json', {'likelihood': 'gaussian', 'beta': 50.0,
                                       'gaussian_stddev': 0.5 ** 0.5,
                                       'num_train_steps': 700})):
    json.dump(value, open(os.path.join(folder, file), 'w'))


def test_published_members_give_the_workdirs_report(sweeps, tmp_path):
  # The same two Gaussian members as the `sweeps` fixture, published.
  root = str(tmp_path / 'published')
  write_published(root, 'gaussian', 0, [0.001, 0.002, 0.0], 0.01)
  write_published(root, 'gaussian', 1, [0.0, 1.2, 0.05], 0.2)
  os.makedirs(os.path.join(root, 'notes'))  # Not a member folder: ignored.
  from_workdirs = beta50_likelihood.write_report(sweeps[:1],
                                                 str(tmp_path / 'a'))
  from_published = beta50_likelihood.write_report([], str(tmp_path / 'b'),
                                                  published_root=root)
  assert list(from_published) == ['gaussian']
  for name, member in from_workdirs['gaussian']['members'].items():
    published = from_published['gaussian']['members'][name]
    for key, value in member.items():
      assert published[key] == pytest.approx(value), (name, key)
  # A workdir named like a published sweep is read instead of its members.
  both = beta50_likelihood.write_report(sweeps, str(tmp_path / 'c'),
                                        published_root=root)
  assert list(both) == ['gaussian', 'bernoulli']


def test_the_setting_table_gives_mean_sd_beside_the_reports_value(tmp_path):
  # Two Gaussian sweeps at β = 5 (two seeds) and β = 50 (one seed), as the
  # report's Table 1 is compared under its likely loss.
  root = str(tmp_path / 'published')
  write_published(root, 'gaussian_beta5', 0, [0.0, 1.2, 0.05], 0.2)
  write_published(root, 'gaussian_beta5', 1, [1.0, 0.0, 0.0], 0.3)
  write_published(root, 'gaussian', 0, [0.001, 0.002, 0.0], 0.01)
  for seed in (0, 1):
    path = os.path.join(root, f'gaussian_beta5_s{seed}', 'config.json')
    config = json.load(open(path))
    json.dump({**config, 'beta': 5.0}, open(path, 'w'))
  report = beta50_likelihood.write_report([], str(tmp_path / 'out'),
                                          published_root=root)
  assert report['gaussian_beta5']['betas'] == [5.0]
  table = open(tmp_path / 'out' / 'likelihood.md').read()
  rows = table[table.index('| likelihood | β |'):].splitlines()
  # Ordered by β; MIG 0.2 and 0.3: mean 0.25, sample sd 0.0707.
  assert rows[2] == ('| gaussian | 5 | 2 | 0 | 0.250 ± 0.071 | 0.500 ± 0.000 '
                     '| 0.900 ± 0.000 | .3391 / .3774 / .6628 |')
  # One seed: no sd. The report's collapsed β = 50 prints its nan Z-diff.
  assert rows[3] == ('| gaussian | 50 | 1 | 1 | 0.010 | 0.500 | 0.900 '
                     '| 0 / nan / 0 |')
