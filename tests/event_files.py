"""Reading TensorBoard event files in tests (no TensorFlow or tensorboard needed)."""

import glob
import struct

from tensorboardX.proto import event_pb2

from bvae_jax.core import metric_logging


def read_events(logdir):
  """Parses TFRecord-framed Event protos (length, crc, data, crc) by hand."""
  events = []
  for path in sorted(glob.glob(f'{logdir}/events.out.tfevents.*')):
    with open(path, 'rb') as f:
      data = f.read()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      payload = data[offset + 12:offset + 12 + length]
      offset += 12 + length + 4
      event = event_pb2.Event()
      event.ParseFromString(payload)
      events.append(event)
  return events


def read_scalars(logdir, tags):
  """{tag: {step: value}} of the scalar summaries named in `tags`."""
  found = metric_logging.read_scalars(logdir)
  return {tag: found.get(tag, {}) for tag in tags}
