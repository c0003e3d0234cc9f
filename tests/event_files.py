"""Reading TensorBoard event files in tests (no TensorFlow or tensorboard needed)."""

import glob
import struct

from tensorboardX.proto import event_pb2


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
  scalars = {tag: {} for tag in tags}
  for event in read_events(logdir):
    for value in event.summary.value:
      if value.tag in scalars:
        scalars[value.tag][event.step] = value.simple_value
  return scalars
