"""Figure helpers, TensorBoard event files and the progress reporter."""

import io
import logging
import os
import struct
import subprocess
import sys
import time

from absl import logging as absl_logging
import matplotlib.image
import numpy as np
from PIL import Image
import pytest

from bvae_jax.core import metric_logging
from bvae_jax.evaluation import capacity_diagnostics
from bvae_jax.evaluation import evaluate
from bvae_jax.figures import drawing
from bvae_jax.reproductions import burgess_fig3
from bvae_jax.sweeps import sweep
from bvae_jax.training import train
from event_files import read_events

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_latent_order_by_kl_high_to_low_ties_by_index():
  order = drawing.latent_order_by_kl(np.array([0.1, 3.0, 0.1, 5.0]))
  np.testing.assert_array_equal(order, [3, 1, 0, 2])


def test_traversal_codes_change_one_latent_per_row():
  seed = np.array([0.5, -1.0, 2.0], np.float32)
  values = np.linspace(-3, 3, 4)
  codes = drawing.traversal_codes(seed, np.array([2, 0]), values)
  assert codes.shape == (2, 4, 3)
  np.testing.assert_array_equal(codes[0, :, 2], values)
  np.testing.assert_array_equal(codes[0, :, :2], np.tile(seed[:2], (4, 1)))
  np.testing.assert_array_equal(codes[1, :, 0], values)
  np.testing.assert_array_equal(codes[1, :, 1:], np.tile(seed[1:], (4, 1)))


def test_mosaic_places_tiles_with_gaps():
  tiles = np.zeros((2, 3, 4, 5, 1), np.float32)
  tiles[1, 2] = 0.5
  canvas = drawing.mosaic(tiles)
  assert canvas.shape == (2 * 4 + 2, 3 * 5 + 2 * 2, 1)
  np.testing.assert_array_equal(canvas[6:10, 14:19], 0.5)
  np.testing.assert_array_equal(canvas[4:6], 1.0)  # The gap row.


def test_panel_grid_wraps_rows_of_five_and_hides_spare_axes():
  figure, axes = drawing.panel_grid(12, (2.0, 3.0))
  assert len(axes) == 12
  assert tuple(figure.get_size_inches()) == (10.0, 9.0)  # 5 wide, 3 rows.
  hidden = [axis for axis in figure.axes if not axis.get_visible()]
  assert len(figure.axes) == 15 and len(hidden) == 3
  assert all(axis.get_visible() for axis in axes)
  figure, axes = drawing.panel_grid(3, (4.0, 3.0))
  assert len(axes) == 3 and tuple(figure.get_size_inches()) == (12.0, 3.0)


def test_traversal_figure_is_a_png(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(5, 64, 64, 1)).astype(np.float32)
  traversals = rng.uniform(size=(3, 5, 64, 64, 1)).astype(np.float32)
  path = str(tmp_path / 'traversal_00000010.png')
  drawing.save_traversal_figure(path, images, images, traversals,
                                np.array([2, 0, 1]), np.array([0.1, 0.0, 4.0]),
                                3.0, 10)
  picture = matplotlib.image.imread(path)
  # Two header rows and three traversal rows of 64 px at 2 screen px each.
  assert picture.shape[0] >= 5 * 64 * 2 and picture.shape[1] >= 5 * 64 * 2


def test_traversal_animation_frames_move_every_latent_and_loop_back():
  # Tile of latent k at value t is filled with (k + 1) / 10 + t / 100.
  num_latents, num_values = 7, 4
  value = (np.arange(num_latents)[:, None] + 1) / 10 + np.arange(
      num_values)[None] / 100
  traversals = np.broadcast_to(value[..., None, None, None],
                               (num_latents, num_values, 3, 4, 1))
  frames = drawing.traversal_animation_frames(traversals, columns=5)
  # Values 0, 1, 2, 3, then back 2, 1: the loop restarts at 0 without a jump.
  assert frames.shape == (6, 2 * 3 + 2, 5 * 4 + 4 * 2, 1)
  assert frames.dtype == np.uint8
  for frame, t in zip(frames, [0, 1, 2, 3, 2, 1]):
    for k in range(num_latents):
      top, left = (k // 5) * (3 + 2), (k % 5) * (4 + 2)
      np.testing.assert_array_equal(
          frame[top:top + 3, left:left + 4],
          np.round(value[k, t] * 255).astype(np.uint8))
  # The three unused tiles of the second line are background.
  np.testing.assert_array_equal(frames[:, 5:, 2 * 6:], 255)
  assert drawing.traversal_animation_frames(traversals[:, :1]).shape[0] == 1


def test_traversal_gif_reads_back_as_the_frames(tmp_path):
  rng = np.random.default_rng(0)
  traversals = rng.uniform(size=(3, 5, 8, 8, 1)).astype(np.float32)
  path = str(tmp_path / 'sub' / 'traversal.gif')
  drawing.save_traversal_gif(path, traversals, frame_ms=80)
  expected = drawing.traversal_animation_frames(traversals)
  with Image.open(path) as gif:
    assert gif.n_frames == len(expected) == 8
    assert gif.info['loop'] == 0 and gif.info['duration'] == 80
    for index, frame in enumerate(expected):
      gif.seek(index)
      # Grey levels survive exactly (GIF's 256-entry palette), at 2× scale.
      np.testing.assert_array_equal(np.asarray(gif.convert('L'))[::2, ::2],
                                    frame[..., 0])
  colour = rng.uniform(size=(2, 3, 8, 8, 3)).astype(np.float32)
  drawing.save_traversal_gif(str(tmp_path / 'colour.gif'), colour)
  with Image.open(tmp_path / 'colour.gif') as gif:
    assert gif.n_frames == 4 and gif.size == (2 * (2 * 8 + 2), 2 * 8)


def test_metric_writer_logs_png_files_as_images(tmp_path):
  picture = np.zeros((6, 10, 3), np.uint8)
  picture[:, :5] = (255, 0, 0)
  Image.fromarray(picture).save(tmp_path / 'figure.png')
  Image.fromarray(picture).convert('RGBA').save(tmp_path / 'alpha.png')
  writer = metric_logging.MetricWriter(str(tmp_path / 'logs'))
  writer.write_image_files(3, {'eval_figures/a': str(tmp_path / 'figure.png'),
                               'eval_figures/b': str(tmp_path / 'alpha.png')})
  writer.close()
  images = {v.tag: v.image for e in read_events(tmp_path / 'logs')
            for v in e.summary.value}
  for tag in ('eval_figures/a', 'eval_figures/b'):
    assert (images[tag].height, images[tag].width) == (6, 10)
    decoded = np.asarray(Image.open(io.BytesIO(
        images[tag].encoded_image_string)))
    np.testing.assert_array_equal(decoded, picture)


def test_metric_writer_writes_real_event_files(tmp_path):
  writer = metric_logging.MetricWriter(str(tmp_path))
  scalars = metric_logging.flatten_metrics(
      {'loss': np.float32(2.5), 'kl_per_latent': np.array([1.0, 2.0])})
  assert scalars == {'loss': 2.5, 'kl_per_latent/z0': 1.0, 'kl_per_latent/z1': 2.0}
  writer.write_scalars(7, scalars)
  writer.write_images(7, {'traversal': np.zeros((8, 8, 1), np.float32)})
  writer.close()
  values = {(v.tag, e.step): v for e in read_events(tmp_path)
            for v in e.summary.value}
  assert values[('loss', 7)].simple_value == 2.5
  assert values[('kl_per_latent/z1', 7)].simple_value == 2.0
  assert values[('traversal', 7)].image.height == 8


def test_just_logging_writer_writes_no_files(tmp_path):
  writer = metric_logging.MetricWriter(str(tmp_path), just_logging=True)
  writer.write_scalars(1, {'loss': 1.0})
  writer.close()
  assert not list(tmp_path.iterdir())


def test_show_progress_log_keeps_own_info_and_all_warnings(tmp_path, caplog):
  absl_logger = logging.getLogger('absl')
  # Both are restored: set_verbosity alone would leave the absl logger at
  # WARNING where it was unset, and later tests capture its INFO lines.
  verbosity, level = absl_logging.get_verbosity(), absl_logger.level
  try:
    metric_logging.show_progress_log()
    metric_logging.show_progress_log()  # Idempotent: one filter.
    assert sum(isinstance(f, metric_logging.OwnInfoFilter)
               for f in absl_logger.filters) == 1
    with caplog.at_level(logging.INFO, logger='absl'):
      absl_logging.info('an INFO line of another library')
      absl_logging.warning('a warning of another library')
      metric_logging.MetricWriter(str(tmp_path), just_logging=True
                                  ).write_scalars(7, {'loss': 1.5})
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ['a warning of another library', '[7] loss=1.5']
  finally:
    for f in list(absl_logger.filters):
      if isinstance(f, metric_logging.OwnInfoFilter):
        absl_logger.removeFilter(f)
    absl_logging.set_verbosity(verbosity)
    absl_logger.setLevel(level)


@pytest.mark.parametrize('module', [train, sweep, evaluate, burgess_fig3])
def test_own_info_lines_pass_from_every_folder_of_the_package(module):
  # Each module logs through absl from its own file; the filter must know
  # all of bvae_jax/ as its own, not the folder metric_logging sits in.
  record = logging.LogRecord('absl', logging.INFO, module.__file__, 1,
                             'Step %d/%d.', (1, 2), None)
  assert metric_logging.OwnInfoFilter().filter(record)
  record.pathname = '/x/site-packages/orbax/checkpoint/checkpoint_manager.py'
  assert not metric_logging.OwnInfoFilter().filter(record)


def test_orbax_errors_are_left_to_the_run_that_raises_them():
  # A failed background save: Orbax logs it at ERROR with a traceback; the
  # run raises it as checkpointing.CheckpointSaveError (tests/test_full_disk.py).
  own_filter = metric_logging.OwnInfoFilter()
  orbax = logging.LogRecord(
      'absl', logging.ERROR,
      '/x/site-packages/orbax/checkpoint/_src/futures/future.py', 1,
      'raised an exception', (), None)
  assert not own_filter.filter(orbax)
  orbax.levelno = logging.WARNING
  assert own_filter.filter(orbax)  # Its warnings stay.
  other = logging.LogRecord('absl', logging.ERROR, '/x/jax/_src/x.py', 1,
                            'an error', (), None)
  assert own_filter.filter(other)


def test_progress_reporter_rate_and_eta():
  times = iter([100.0, 110.0, 115.0])
  progress = metric_logging.ProgressReporter(1000, start_step=0,
                                             clock=lambda: next(times))
  first = progress.report(100)  # 100 steps in 10 s.
  assert first['steps_per_sec'] == 10.0 and first['eta_seconds'] == 90.0
  second = progress.report(200)  # Rate of the last interval only: 20/s.
  assert second['steps_per_sec'] == 20.0 and second['eta_seconds'] == 40.0
  assert metric_logging.format_eta(3725) == '1:02:05'
  assert metric_logging.format_eta(float('inf')) == '?'


@pytest.mark.slow
def test_importing_bvae_jax_leaves_the_matplotlib_backend_alone():
  # A notebook's inline backend must survive `import bvae_jax.evaluation.evaluate`; these
  # modules used to call matplotlib.use('Agg') on import.
  code = ("import matplotlib; matplotlib.use('svg'); "
          "import bvae_jax.figures.drawing, bvae_jax.evaluation.evaluate, bvae_jax.sweeps.sweep_report, "
          "bvae_jax.evaluation.dataset_samples; print(matplotlib.get_backend())")
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == 'svg'


def test_read_scalars_joins_the_event_files_of_a_resumed_run(tmp_path):
  first = metric_logging.MetricWriter(str(tmp_path))
  first.write_scalars(1, {'loss': 3.0, 'kl_per_latent/z0': 0.5})
  first.write_scalars(2, {'loss': 2.0})
  first.close()
  time.sleep(1.1)  # Event files are named by the second they were opened in.
  resumed = metric_logging.MetricWriter(str(tmp_path))  # A second file.
  resumed.write_scalars(2, {'loss': 2.5})  # Step 2 again, after a resume.
  resumed.write_scalars(3, {'loss': 1.0, 'kl_per_latent/z0': 0.7})
  resumed.close()
  assert len(list(tmp_path.glob('events.out.tfevents.*'))) == 2
  assert metric_logging.read_scalars(str(tmp_path)) == {
      'loss': {1: 3.0, 2: 2.5, 3: 1.0},
      'kl_per_latent/z0': {1: 0.5, 3: pytest.approx(0.7)}}
  assert list(metric_logging.read_scalars(str(tmp_path), 'kl_')) == [
      'kl_per_latent/z0']


def test_a_record_cut_short_by_a_killed_run_is_left_out(tmp_path):
  # A run killed mid-write leaves part of a record at the end of its event
  # file; read as an Event it had wall time 0, so a published run's wall time
  # was the epoch's seconds.
  writer = metric_logging.MetricWriter(str(tmp_path))
  writer.write_scalars(1, {'loss': 3.0})
  writer.write_scalars(2, {'loss': 2.0})
  writer.close()
  (path,) = tmp_path.glob('events.out.tfevents.*')
  whole = list(metric_logging.read_events(str(tmp_path)))
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:-9])  # The last record loses its data's tail and crc.
  cut = list(metric_logging.read_events(str(tmp_path)))
  assert cut == whole[:-1]
  assert min(event.wall_time for event in cut) > 1e9
  assert metric_logging.read_scalars(str(tmp_path)) == {'loss': {1: 3.0}}
  # Cut after the last record's length and its crc: also left out.
  last = 0
  while True:
    (length,) = struct.unpack('<Q', data[last:last + 8])
    if last + 12 + length + 4 == len(data):
      break
    last += 12 + length + 4
  with open(path, 'wb') as f:
    f.write(data[:last + 12])
  assert list(metric_logging.read_events(str(tmp_path))) == cut


def test_kl_history_and_marked_mutual_information_figures(tmp_path):
  steps = np.arange(1, 11) * 100
  kl = np.stack([np.linspace(0, 5, 10), np.linspace(0, 1, 10),
                 np.zeros(10)], axis=1)
  path = str(tmp_path / 'kl.png')
  drawing.save_kl_history_figure(path, steps, kl, capacity=kl.sum(1))
  assert matplotlib.image.imread(path).shape[-1] in (3, 4)
  one_panel_width = matplotlib.image.imread(path).shape[1]
  # With the input-dependent part: a second panel beside the first.
  drawing.save_kl_history_figure(path, steps, kl, capacity=kl.sum(1),
                                 information_per_latent=kl / 2)
  assert matplotlib.image.imread(path).shape[1] > 1.5 * one_panel_width
  path = str(tmp_path / 'mi.png')
  drawing.save_mutual_information_figure(
      path, np.random.RandomState(0).uniform(size=(3, 2)), [0, 1, 2],
      [5.0, 1.0, 0.01], ['x', 'y'], 100, inactive=[False, False, True])
  assert matplotlib.image.imread(path).shape[-1] in (3, 4)


def test_capacity_gap_monitor_warns_once_per_episode():
  monitor = capacity_diagnostics.CapacityGapMonitor(gamma=100.0)
  means = lambda gap: {'kl_capacity_gap': np.float32(gap),
                       'kl_total': np.float32(10.0),
                       'capacity': np.float32(10.0 + gap)}
  warnings = [monitor.update(step, means(gap)) for step, gap in enumerate(
      [0.5, 1.5, 1.5, 0.2, 1.5, 1.5, 1.5, 1.5, 3.0])]
  # Three intervals in a row above 1 nat: steps 4-6; steps 1-2 were two.
  assert [step for step, w in enumerate(warnings) if w] == [6]
  assert 'γ = 100 is too small' in warnings[6]
  assert 'now 1.50 nats' in warnings[6] and 'raise config.gamma' in warnings[6]
  # Objectives without a capacity are ignored.
  assert monitor.update(9, {'kl_total': np.float32(1.0)}) is None


def test_inactive_latents_are_those_below_a_tenth_of_a_nat():
  np.testing.assert_array_equal(
      capacity_diagnostics.inactive_latents([2.0, 0.1, 0.099, 0.0]),
      [False, False, True, True])


def test_collapse_monitor_warns_when_the_kl_does_not_depend_on_the_input():
  monitor = capacity_diagnostics.CollapseMonitor(name='seed=7')
  means = lambda kl, input_part: {'kl_total': np.float32(kl),
                                  'information': np.float32(input_part)}
  history = [(0.2, 0.0),     # Too little KL to judge.
             (10.65, 0.0),   # Issue 25's collapsed seed: all of it shared.
             (11.0, 0.5),    # 4.5%: still collapsed.
             (11.5, 5.0),    # 43%: learning; the streak restarts.
             (12.0, 0.1), (12.5, 0.1), (13.0, 0.2), (13.5, 0.2)]
  warnings = [monitor.update(step, means(*values))
              for step, values in enumerate(history)]
  assert [step for step, w in enumerate(warnings) if w] == [6]
  assert warnings[6].startswith('seed=7: step 6: the encoder has collapsed')
  assert 'only 0.200 of the 13.00 nats' in warnings[6]
  # Runs that log no input-dependent KL are ignored.
  assert monitor.update(9, {'kl_total': np.float32(1.0)}) is None


def test_informative_latents_count_the_information():
  np.testing.assert_array_equal(
      capacity_diagnostics.informative_latents([2.0, 0.1, 0.099, 0.0]),
      [True, True, False, False])


def test_interval_line_puts_progress_rate_eta_and_loss_terms_on_one_line():
  line = metric_logging.interval_line(
      200, 5000, {'steps_per_sec': 14.2, 'eta_seconds': 338.0},
      {'kl_total': 0.45, 'capacity': 0.34, 'loss': 533.0,
       'reconstruction': 522.0, 'kl_per_latent/z0': 0.1, 'steps_per_sec': 14.2},
      units_per_step=64)
  assert line == ('Step 200/5000 (4%), 14.2 steps/s (909 images/s), ETA '
                  '0:05:38 | loss=533, reconstruction=522, kl_total=0.45, '
                  'capacity=0.34')


def test_quiet_library_logs_drops_known_harmless_warnings(caplog):
  absl_logger = logging.getLogger('absl')
  try:
    metric_logging.quiet_library_logs()
    record = logging.LogRecord('absl', logging.WARNING,
                               '/x/tensorflow_datasets/core/file_utils.py', 1,
                               'Variant folder %s has no dataset_info.json',
                               ('/data/dsprites/2.0.0',), None)
    own_filter = [f for f in absl_logger.filters
                  if isinstance(f, metric_logging.OwnInfoFilter)][0]
    assert not own_filter.filter(record)
    record.msg = 'Some other warning'
    assert own_filter.filter(record)
    assert logging.getLogger('jax').level == logging.WARNING
  finally:
    for f in list(absl_logger.filters):
      if isinstance(f, metric_logging.OwnInfoFilter):
        absl_logger.removeFilter(f)
    for name in metric_logging._CHATTY_LOGGERS:
      logging.getLogger(name).setLevel(logging.NOTSET)
