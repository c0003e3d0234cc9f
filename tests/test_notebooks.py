"""The notebooks of colabs/: committed clean, and executed top to bottom.

Each notebook has one cell tagged `parameters` (papermill's convention). The
tests insert a cell after it that shrinks the run (a few steps on the tiny
data set, small metric samples), as papermill would, and execute the whole
notebook in a fresh Jupyter kernel with nbclient, so a cell that raises fails
the build. The kernel runs in the repository root with it on PYTHONPATH, so the
notebooks' set-up cell finds bvae_jax and installs nothing.
"""

import base64
import datetime
import io
import json
import os
import re
import time

import nbclient
import nbformat
from PIL import Image
import pytest

from bvae_jax.core import devices
from colabs import clear_outputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLABS = os.path.join(REPO, 'colabs')
NOTEBOOKS = ('quickstart.ipynb', 'explore_a_model.ipynb', 'sweeps_on_tpu.ipynb')
OWNER_PLACEHOLDER = 'YOUR_GITHUB_USER'
# Seconds a cell may run before the test fails (a hung kernel).
CELL_TIMEOUT = 300

# Child processes and notebooks: the whole file is in the slow tier.
pytestmark = pytest.mark.slow


def tiny_overrides(data_dir, **fields):
  """Config fields for a few steps of batch 8 on dsprites_procedural/tiny."""
  return {'dataset': 'dsprites_procedural/tiny', 'data_dir': data_dir,
          'train_subset_size': 0, 'batch_size': 8, 'num_train_steps': 4,
          'log_every_steps': 2, 'checkpoint_every_steps': 4,
          'figure_every_steps': 4, 'capacity_anneal_steps': 100, **fields}


TINY_EVAL = {'num_train': 300, 'num_test': 150, 'batch_size': 8,
             'num_variance_estimate': 300, 'encode_batch_size': 256,
             'metrics': ('mig',)}


def read(name):
  return nbformat.read(os.path.join(COLABS, name), as_version=4)


def kernel_env():
  """The test process's environment, for a kernel that runs like a user's.

  The notebooks choose their own device count (conftest forces 2 for the
  tests); they share the tests' compilation cache and fast-compile setting.
  """
  env = dict(os.environ)
  env['XLA_FLAGS'] = ' '.join(
      flag for flag in env.get('XLA_FLAGS', '').split()
      if not flag.startswith('--xla_force_host_platform_device_count'))
  env.pop('MPLBACKEND', None)  # The kernel's inline backend draws the figures.
  env['PYTHONPATH'] = os.pathsep.join(
      [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  env.update({
      'JAX_COMPILATION_CACHE_DIR': os.path.join(
          os.environ.get('TMPDIR', '/tmp'), 'bvae_jax_test_compilation_cache'),
      'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
      'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0',
      'JAX_DISABLE_MOST_OPTIMIZATIONS': '1',
  })
  return env


def execute(name, **parameters):
  """Runs notebook `name` with `parameters` injected; returns (notebook, s)."""
  notebook = read(name)
  index = next(i for i, cell in enumerate(notebook.cells)
               if 'parameters' in cell.metadata.get('tags', []))
  injected = nbformat.v4.new_code_cell(
      '\n'.join(f'{key} = {value!r}' for key, value in parameters.items()))
  injected.metadata['tags'] = ['injected-parameters']
  notebook.cells.insert(index + 1, injected)
  start = time.perf_counter()
  nbclient.NotebookClient(
      notebook, timeout=CELL_TIMEOUT, kernel_name='python3',
      resources={'metadata': {'path': REPO}}).execute(env=kernel_env())
  seconds = time.perf_counter() - start
  print(f'{name} ran in {seconds:.1f} s; slowest cells: ' + ', '.join(
      f'{t:.1f} s ({source!r})' for t, source in sorted(
          cell_seconds(notebook), reverse=True)[:3]))
  return notebook, seconds


def cell_seconds(notebook):
  """(seconds, first line) of each executed cell, from nbclient's timings."""
  timings = []
  for cell in notebook.cells:
    execution = cell.metadata.get('execution', {})
    if 'iopub.execute_input' in execution:
      start, end = (datetime.datetime.fromisoformat(execution[key])
                    for key in ('iopub.execute_input', 'shell.execute_reply'))
      timings.append(((end - start).total_seconds(),
                      cell.source.partition('\n')[0][:40]))
  return timings


def outputs(notebook):
  return [output for cell in notebook.cells if cell.cell_type == 'code'
          for output in cell.get('outputs', [])]


def text_of(notebook):
  """Printed text, and what display() showed as Markdown or plain text."""
  return '\n'.join(output.get('text', '') or
                   output.get('data', {}).get('text/markdown', '') or
                   output.get('data', {}).get('text/plain', '')
                   for output in outputs(notebook))


def images(notebook, mime):
  """The decoded images of `mime` ('image/png', 'image/gif') shown."""
  return [Image.open(io.BytesIO(base64.b64decode(output['data'][mime])))
          for output in outputs(notebook) if mime in output.get('data', {})]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='module')
def quickstart(data_dir, tmp_path_factory):
  """The quick start at CI size; its workdir serves explore_a_model too."""
  workdir = str(tmp_path_factory.mktemp('quickstart'))
  notebook, _ = execute(
      'quickstart.ipynb', WORKDIR=workdir, SHOW_TENSORBOARD=False,
      CONFIG_OVERRIDES=tiny_overrides(data_dir))
  return notebook, workdir


def assert_clean(notebook, name):
  """No outputs, execution counts, run metadata or widget state."""
  assert 'widgets' not in notebook.metadata, name
  for cell in notebook.cells:
    assert not set(cell.metadata) & set(clear_outputs.RUN_METADATA), name
    if cell.cell_type == 'code':
      assert cell.outputs == [] and cell.execution_count is None, (
          f'{name} has outputs: run python colabs/clear_outputs.py {name}')


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_committed_notebooks_are_clean(name):
  """No outputs or execution counts (diffs show code only), one parameters
  cell, a Colab badge, and the set-up cell that makes them run on Colab."""
  notebook = read(name)
  nbformat.validate(notebook)
  assert_clean(notebook, name)
  tagged = [c for c in notebook.cells
            if 'parameters' in c.metadata.get('tags', [])]
  assert len(tagged) == 1, f'{name}: {len(tagged)} parameters cells'
  source = '\n'.join(cell.source for cell in notebook.cells)
  badge = (f'https://colab.research.google.com/github/{OWNER_PLACEHOLDER}/'
           f'bvae_jax/blob/main/colabs/{name}')
  assert badge in source
  for readme in ('README.md', os.path.join('colabs', 'README.md')):
    with open(os.path.join(REPO, readme)) as f:
      assert badge in f.read(), f'{readme} lacks the badge of {name}'
  assert "find_spec('bvae_jax') is None" in source
  assert 'requirements.txt' in source


def test_quickstart_trains_and_shows_figures_and_the_gif(quickstart):
  notebook, workdir = quickstart
  text = text_of(notebook)
  # The notebook's default split: 2 devices per usable core, dividing the
  # batch of 8 (devices.default_host_device_count), on whatever machine.
  expected = devices.default_host_device_count(8, devices.available_cores())
  assert f'Runtime: cpu, {expected} device(s)' in text
  assert 'Trained to step 4' in text  # The injected parameters took effect.
  assert 'Images: ' in text and 'traversal' in text and 'reconstructions' in text
  pngs = images(notebook, 'image/png')
  assert len(pngs) == 3  # Reconstructions, traversal, KL history.
  gifs = images(notebook, 'image/gif')
  assert len(gifs) == 1 and gifs[0].n_frames > 1
  assert os.path.exists(os.path.join(workdir, 'figures',
                                     'traversal_00000004.gif'))


def test_clear_outputs_returns_an_executed_notebook_to_its_committed_cells(
    quickstart):
  executed = nbformat.from_dict(quickstart[0])
  assert outputs(executed)
  cleared = clear_outputs.clear(executed)
  assert_clean(cleared, 'quickstart.ipynb')
  committed = read('quickstart.ipynb')
  kept = [c for c in cleared.cells
          if 'injected-parameters' not in c.metadata.get('tags', [])]
  assert kept == committed.cells


def test_explore_a_model_restores_evaluates_and_encodes(quickstart):
  _, workdir = quickstart
  # No widgets: nbclient can stall for its whole cell timeout after a cell
  # that creates them (jupyter/nbclient#312; seen here 2 runs in 4).
  notebook, _ = execute('explore_a_model.ipynb', WORKDIR=workdir,
                        EVAL_OVERRIDES=TINY_EVAL, INTERACTIVE=False)
  text = text_of(notebook)
  assert f'Restored step 4 of {workdir}' in text
  assert 'mig: discrete_mig = ' in text
  assert os.path.exists(os.path.join(workdir, 'eval', 'metrics_4.json'))
  # MI matrix, MIG bars, the slider's picture (latent of highest KL at 0),
  # the image's panel and the KL history; the encoded image's traversal GIF.
  assert len(images(notebook, 'image/png')) == 5
  assert len(images(notebook, 'image/gif')) == 1


def test_sweeps_on_tpu_trains_the_grid_and_shows_the_table(data_dir,
                                                            tmp_path):
  notebook, _ = execute(
      'sweeps_on_tpu.ipynb', WORKDIR=str(tmp_path), BETAS=(1.0, 8.0),
      SEEDS=(0, 1), UDR_POINTS=200,
      CONFIG_OVERRIDES={**tiny_overrides(data_dir), 'eval': TINY_EVAL})
  text = text_of(notebook)
  # The mesh depends on the machine's device count (devices.py's default
  # split of its cores): all of them, members along the first axis.
  mesh = re.search(r'4 members on a mesh of (\d+) \(members\) × (\d+) '
                   r'\(data\) devices', text)
  assert mesh, text[-2000:]
  member_axis, data_axis = int(mesh[1]), int(mesh[2])
  assert member_axis * data_axis == devices.default_host_device_count(
      8, devices.available_cores())
  assert 4 % member_axis == 0
  assert 'beta=1,seed=0' in text and 'beta=8,seed=1' in text
  assert 'mig.discrete_mig' in text  # The evaluated table.
  assert len(images(notebook, 'image/gif')) == 2
  # UDR of every member, and its rank correlation with each evaluated metric
  # where one is defined: at this tiny size every UDR may be 0 (no active
  # latent), and then the notebook must say why there is none.
  assert '| beta=8,seed=1 |' in text
  with open(os.path.join(tmp_path, 'udr.json')) as f:
    udr_summary = json.load(f)
  assert len(udr_summary['members']) == 4
  for metric in udr_summary['rank_correlation']:
    assert f'UDR vs {metric}: Spearman ρ' in text
  if len(set(udr_summary['members'].values())) == 1:
    assert not udr_summary['rank_correlation']  # ρ of a constant: undefined.
  if not udr_summary['rank_correlation']:
    assert 'No rank correlation: it needs ≥ 3 evaluated members' in text
