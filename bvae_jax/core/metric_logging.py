"""Training metrics to TensorBoard event files and the console, with progress/ETA.

clu's `metric_writers` would be the natural choice, but clu 0.0.12 imports
TensorFlow when its metric_writers package loads, and TensorFlow (~1.5 GB) is
not a dependency of bvae_jax. tensorboardX writes the same TensorBoard event
files without TensorFlow; this module is the thin layer that gives it clu's
shape (`write_scalars(step, dict)`, `write_images`) and adds clu's
ReportProgress behaviour (steps/s and ETA in the log).
"""

import glob
import logging as std_logging
import os
import struct
import time
from typing import Iterator, Mapping

from absl import logging
import numpy as np
from PIL import Image
import tensorboardX
from tensorboardX.proto import event_pb2


def flatten_metrics(metrics: Mapping[str, np.ndarray]) -> dict[str, float]:
  """Turns scalars and vectors into flat {name: float}; vector entries get /i.

  `kl_per_latent` of shape (L,) becomes `kl_per_latent/z0` … `kl_per_latent/z{L-1}`.
  """
  flat = {}
  for name, value in metrics.items():
    value = np.asarray(value)
    if value.ndim == 0:
      flat[name] = float(value)
    else:
      for index, entry in enumerate(value.reshape(-1)):
        flat[f'{name}/z{index}'] = float(entry)
  return flat


class MetricWriter:
  """Writes scalars and images to TensorBoard (process 0) and the console.

  Attributes:
    logdir: where the event files go.
  """

  def __init__(self, logdir: str, *, just_logging: bool = False):
    """Opens the writer.

    Args:
      logdir: directory of the TensorBoard event files (created if missing).
      just_logging: only log to the console (other processes of a multi-host
        job, so that one set of event files exists).
    """
    self.logdir = logdir
    self._summary_writer = (None if just_logging else
                            tensorboardX.SummaryWriter(logdir=logdir))

  def write_scalars(self, step: int, scalars: Mapping[str, float], *,
                    console: bool = True) -> None:
    """Writes `scalars` at `step` to TensorBoard, and logs the headline ones
    (vector entries, `name/...`, are left out of the log) unless `console` is
    False: training loops log their own one line per interval
    (`interval_line`)."""
    headline = {k: v for k, v in scalars.items() if '/' not in k}
    if console:
      logging.info('[%d] %s', step, format_scalars(headline))
    if self._summary_writer is not None:
      for name, value in scalars.items():
        self._summary_writer.add_scalar(name, value, global_step=step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Logs HWC uint8 or [0, 1] float images at `step`."""
    if self._summary_writer is not None:
      for name, image in images.items():
        self._summary_writer.add_image(name, image, global_step=step,
                                       dataformats='HWC')

  def write_image_files(self, step: int, paths: Mapping[str, str]) -> None:
    """Logs image files (PNGs) at `step`, as TensorBoard images {tag: path}.

    For figures drawn by matplotlib (the evaluation's): TensorBoard then
    shows exactly the picture on disk.
    """
    if self._summary_writer is not None:
      self.write_images(step, {
          name: np.asarray(Image.open(path).convert('RGB'))
          for name, path in paths.items()})

  def flush(self) -> None:
    if self._summary_writer is not None:
      self._summary_writer.flush()

  def close(self) -> None:
    if self._summary_writer is not None:
      self._summary_writer.close()


def read_scalars(logdir: str, prefix: str = '') -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of the scalars in `logdir`'s event files.

  Reads every `events.out.tfevents.*` file (a resumed run has several; a
  later value of a step wins), keeping tags that start with `prefix`. The
  files are TFRecord-framed Event protos (length, crc, data, crc), parsed
  with tensorboardX's proto, so neither TensorFlow nor tensorboard is needed.
  """
  scalars: dict[str, dict[int, float]] = {}
  for event in read_events(logdir):
    for value in event.summary.value:
      if value.tag.startswith(prefix) and value.HasField('simple_value'):
        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
  return scalars


def read_events(logdir: str) -> Iterator[event_pb2.Event]:
  """Every Event of `logdir`'s event files, file by file in name order.

  A file's last record is left out when it is cut short: a run killed while
  writing it leaves part of one, which would otherwise parse as an empty
  Event (wall time 0, step 0).
  """
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    offset = 0
    while offset + 12 <= len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      end = offset + 12 + length + 4  # Length, its crc, data, data's crc.
      if end > len(data):
        logging.warning('%s ends in a record cut short (%d of its %d bytes); '
                        'read up to it.', path, len(data) - offset,
                        end - offset)
        break
      yield event_pb2.Event.FromString(data[offset + 12:end - 4])
      offset = end


# The package's directory (this file is in its core/): log records from files
# below it are bvae_jax's own.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# Orbax logs each failure of a background save thread at ERROR, with its
# traceback: four copies for one full disk. The run raises that failure as
# one line (checkpointing.CheckpointSaveError), so with the library logs
# quiet Orbax's copies are left out (--verbose shows them).
_ORBAX_DIR = os.sep + os.path.join('orbax', 'checkpoint') + os.sep

# Warnings that libraries log on every run although nothing is wrong, as
# (file name, start of the message). TFDS scans every version folder of a data
# set it is asked for and warns about each one without metadata: the real
# dSprites' folders exist but are empty wherever only the procedural renderer
# is prepared.
_HARMLESS_WARNINGS = (('file_utils.py', 'Variant folder '),)

# Python loggers (not absl's) that log at INFO on every start, e.g. JAX's
# "Unable to initialize backend 'tpu'" on a machine without one.
_CHATTY_LOGGERS = ('jax', 'orbax', 'tensorflow_datasets')


class OwnInfoFilter(std_logging.Filter):
  """Passes bvae_jax's INFO lines and every library's warnings and errors,
  except the known harmless ones (_HARMLESS_WARNINGS).

  Other libraries log through absl too; Orbax alone writes ~60 INFO lines per
  checkpoint, which would bury the progress log.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    if any(os.path.basename(record.pathname) == name and
           str(record.msg).startswith(start)
           for name, start in _HARMLESS_WARNINGS):
      return False
    if record.levelno == std_logging.ERROR and _ORBAX_DIR in record.pathname:
      return False
    return (record.levelno >= std_logging.WARNING or
            os.path.abspath(record.pathname).startswith(_PACKAGE_DIR))


def quiet_library_logs() -> None:
  """Keeps other libraries' INFO lines (Orbax, TFDS, JAX) off the console.

  bvae_jax's own INFO lines (where a run writes, one line per log interval,
  what it saved, its summary) and every warning and error stay. `main.py`
  calls it unless --verbose; calling it again changes nothing.
  """
  logger = std_logging.getLogger('absl')
  if not any(isinstance(f, OwnInfoFilter) for f in logger.filters):
    logger.addFilter(OwnInfoFilter())
  for name in _CHATTY_LOGGERS:
    std_logging.getLogger(name).setLevel(std_logging.WARNING)


def show_progress_log() -> None:
  """For notebooks: bvae_jax's INFO log (loss terms, steps/s, ETA) on, other
  libraries' INFO lines off (`quiet_library_logs`). Calling it again changes
  nothing."""
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()


# The loss terms every objective logs, first in the console line.
_LEADING_SCALARS = ('loss', 'reconstruction', 'kl_total')
# Shown in the line's rate part instead.
_RATE_SCALARS = ('steps_per_sec', 'images_per_sec')


def format_scalars(scalars: Mapping[str, float]) -> str:
  """'loss=1.2, reconstruction=…, kl_total=…, <the rest by name>' (4 digits)."""
  names = ([n for n in _LEADING_SCALARS if n in scalars] +
           sorted(n for n in scalars if n not in _LEADING_SCALARS))
  return ', '.join(f'{n}={scalars[n]:.4g}' for n in names)


def interval_line(step: int, num_train_steps: int,
                  timing: Mapping[str, float],
                  scalars: Mapping[str, float], unit: str = 'images',
                  units_per_step: float | None = None,
                  label: str = '') -> str:
  """The console line of one log interval: progress, rate, ETA, loss terms.

  E.g. 'Step 200/5000 (4%), 14.2 steps/s (909 images/s), ETA 0:05:38 |
  loss=533, reconstruction=522, kl_total=0.45, capacity=0.34, …'.

  Args:
    step: the step just finished.
    num_train_steps: the run's last step.
    timing: ProgressReporter.report's {'steps_per_sec', 'eta_seconds'}.
    scalars: the interval's means; per-latent entries (`name/...`) and the
      rates are left out.
    unit: what `units_per_step` counts ('images', 'member-images').
    units_per_step: e.g. the batch size; None: no second rate.
    label: says what the scalars are, e.g. 'median of 6 members'.
  """
  rate = f'{timing["steps_per_sec"]:.1f} steps/s'
  if units_per_step:
    rate += f' ({timing["steps_per_sec"] * units_per_step:.0f} {unit}/s)'
  headline = {k: v for k, v in scalars.items()
              if '/' not in k and k not in _RATE_SCALARS}
  return (f'Step {step}/{num_train_steps} '
          f'({100 * step / max(num_train_steps, 1):.0f}%), {rate}, ETA '
          f'{format_eta(timing["eta_seconds"])} | '
          f'{label + ": " if label else ""}{format_scalars(headline)}')


class ProgressReporter:
  """Measures steps/s between reports and estimates the time left.

  Like clu's `periodic_actions.ReportProgress`: the rate is measured over the
  last interval only, so a slow first step (compilation) does not skew the ETA.
  """

  def __init__(self, num_train_steps: int, start_step: int,
               clock=time.monotonic):
    self._num_train_steps = num_train_steps
    self._clock = clock
    self._last_step = start_step
    self._last_time = clock()

  def report(self, step: int) -> dict[str, float]:
    """Returns {'steps_per_sec', 'eta_seconds'} since the previous report."""
    now = self._clock()
    elapsed = max(now - self._last_time, 1e-9)
    steps_per_sec = (step - self._last_step) / elapsed
    remaining = self._num_train_steps - step
    eta = remaining / steps_per_sec if steps_per_sec > 0 else float('inf')
    self._last_step, self._last_time = step, now
    return {'steps_per_sec': steps_per_sec, 'eta_seconds': eta}


def format_eta(seconds: float) -> str:
  """Formats seconds as H:MM:SS (or '?' when unknown)."""
  if not np.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'
