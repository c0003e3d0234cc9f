"""The base of bvae_jax's TFDS builders: array_record files, no TensorFlow.

Every builder of ours (dsprites_procedural, dsprites_official, gaussian_blobs,
chairs3d) needs the same two departures from `GeneratorBasedBuilder`:

* array_record as the default file format: TFDS falls back to tfrecord, which
  needs TensorFlow to read; array_record gives random access
  (`as_data_source`) without it.
* `code_path` answered from the subclass's module: TFDS's own lookup imports
  `importlib_resources`, a backport that TFDS 4.9.10 declares only for
  Python < 3.9 yet imports on every version.
"""

import sys

from etils import epath
import tensorflow_datasets as tfds


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder,
                         skip_registration=True):
  """GeneratorBasedBuilder writing array_record; not a data set itself."""

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    """The file that defines the builder class."""
    return epath.Path(sys.modules[cls.__module__].__file__)

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or 'array_record', **kwargs)
