"""The base of bvae_jax's TFDS builders: array_record files, no TensorFlow.

Every builder of ours (dsprites_procedural, dsprites_official, gaussian_blobs,
chairs3d) needs the same three departures from `GeneratorBasedBuilder`:

* array_record as the default file format: TFDS falls back to tfrecord, which
  needs TensorFlow to read; array_record gives random access
  (`as_data_source`) without it.
* Each split written as one shard, in key order, by `_generate_splits` here:
  TFDS's own writer buffers records in its shuffler, which spills to disk with
  TensorFlow once it holds over 1 GB. This overrides a private TFDS method,
  pinned by `tensorflow-datasets<5` in requirements.txt.
* `code_path` answered from the subclass's module: TFDS's own lookup imports
  `importlib_resources`, a backport that TFDS 4.9.10 declares only for
  Python < 3.9 yet imports on every version.
"""

import sys

from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer
from tensorflow_datasets.core import file_adapters


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

  def _serialized_splits(self, dl_manager):
    """Returns {split name: iterable of serialised records in record order}.

    By default, the examples of `_split_generators`, encoded by the features
    and serialised by TFDS's ExampleSerializer, in key order. The keys may
    come in any order (chairs3d reads an archive in its own order), so a
    split is held in memory until its last example is read. A builder with a
    faster or streaming way to the same records overrides this.
    """
    features = self.info.features
    serializer = example_serializer.ExampleSerializer(
        features.get_serialized_info())

    def in_key_order(examples):
      records = {key: serializer.serialize_example(
          features.encode_example(example)) for key, example in examples}
      return [records[key] for key in sorted(records)]

    return {name: in_key_order(examples) for name, examples
            in self._split_generators(dl_manager).items()}

  def _generate_splits(self, dl_manager, download_config):
    """Writes each split of `_serialized_splits` as one shard.

    Overrides GeneratorBasedBuilder._generate_splits (see the module doc).

    Returns:
      The SplitInfo of each split.
    """
    del download_config  # No beam options.
    return [self._write_split(name, records) for name, records
            in self._serialized_splits(dl_manager).items()]

  def _write_split(self, name, records):
    """Writes serialised `records` as split `name`'s one shard."""
    template = self._get_filename_template(split_name=name)
    num_records = 0
    num_bytes = 0

    def counted():
      nonlocal num_records, num_bytes
      for record in records:
        num_records += 1
        num_bytes += len(record)
        yield num_records, record  # array_record ignores the key.

    adapter = file_adapters.ADAPTER_FOR_FORMAT[self.info.file_format]
    adapter.write_examples(
        template.sharded_filepath(shard_index=0, num_shards=1), counted())
    return tfds.core.SplitInfo(
        name=name, shard_lengths=[num_records], num_bytes=num_bytes,
        filename_template=template)
