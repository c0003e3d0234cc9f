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

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs `scalars` at `step`; vector-valued per-latent entries are folded."""
    headline = {k: v for k, v in scalars.items() if '/' not in k}
    logging.info('[%d] %s', step,
                 ', '.join(f'{k}={v:.4g}' for k, v in sorted(headline.items())))
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
  """Every Event of `logdir`'s event files, file by file in name order."""
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    offset = 0
    while offset + 12 <= len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      yield event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4


# The package's directory: log records from files below it are bvae_jax's own.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class OwnInfoFilter(std_logging.Filter):
  """Passes bvae_jax's INFO lines and every library's warnings and errors.

  Other libraries log through absl too; Orbax alone writes ~60 INFO lines per
  checkpoint, which would bury the progress log in a notebook.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING or
            os.path.abspath(record.pathname).startswith(_PACKAGE_DIR))


def show_progress_log() -> None:
  """For notebooks: bvae_jax's INFO log (loss terms, steps/s, ETA) on, other
  libraries' INFO lines off (`OwnInfoFilter`). Calling it again changes nothing."""
  logging.set_verbosity(logging.INFO)
  logger = std_logging.getLogger('absl')
  if not any(isinstance(f, OwnInfoFilter) for f in logger.filters):
    logger.addFilter(OwnInfoFilter())


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
