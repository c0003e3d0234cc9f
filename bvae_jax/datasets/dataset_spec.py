r"""What a data set's module hands the registry: a `DatasetSpec`.

Each data set has one home, its module (dsprites_tfds.py, color_dsprites.py,
gaussian_blobs.py, chairs_tfds.py, tfds_catalog.py), which defines its spec:

  name             the family name, e.g. 'dsprites'
  variants         the config names it answers to, e.g. ('dsprites',
                   'dsprites/tiny'); the part after '/' is the subset
  sources          where its records can come from, in order of preference:
                   each a `Source` whose `open_fn(subset, data_dir)` returns
                   the records (`Opened`)
  factor_names,    its ground-truth factors; None for a set without them;
  factor_sizes     a size of None is known only once prepared (the chairs of
                   an archive)
  image_shape      (H, W, C) of an image
  config_settings  what else it changes in a config (latent_dim,
                   capacity_max), with the sources cited where it is defined

`registry.py` builds its name -> spec table from these and applies the
data-source rule to `sources`; `config_defaults.set_dataset` applies
`config_updates()`. Nothing here knows a particular data set.
"""

import dataclasses
import time
from typing import Any, Callable, Mapping

from absl import logging

from bvae_jax.datasets import ground_truth

# What config.dataset_source may say (the rule is registry.open_source).
SOURCE_KINDS = ('real', 'procedural')


class DatasetUnavailableError(RuntimeError):
  """The data set's records cannot be obtained here."""


class SourceUnavailableError(RuntimeError):
  """One source of a data set cannot be used here; the message says why.

  The data-source rule then tries the next source, and names this reason in
  its log line or error.
  """


@dataclasses.dataclass(frozen=True)
class Opened:
  """The records of a data set from one source.

  Attributes:
    builder: the prepared TFDS builder holding the records.
    images: reader with `num_records` and `read_images(record_indices)`
      (datasets/records.py).
    make_ground_truth: builds the GroundTruthData; None when the factors are
      unknown.
  """
  builder: Any
  images: Any
  make_ground_truth: Callable[[], ground_truth.GroundTruthData] | None


@dataclasses.dataclass(frozen=True)
class Source:
  """One place a data set's records can come from.

  Attributes:
    name: what `Dataset.source` and dataset.json record, e.g. 'official'.
    kind: 'real' or 'procedural': the config.dataset_source it answers to.
    open_fn: (subset, data_dir) -> Opened, preparing on first use. Raises
      SourceUnavailableError when this source cannot be had here (the rule
      falls back); any other error stops the rule.
    log_text: the log line's description of the source, formatted with
      `tfds_name`, `data_dir` and `why` (why it was chosen).
    subsets: the subsets it holds; None: all. Others skip it silently.
  """
  name: str
  kind: str
  open_fn: Callable[[str, str | None], Opened]
  log_text: str
  subsets: tuple[str, ...] | None = None

  def __post_init__(self):
    if self.kind not in SOURCE_KINDS:
      raise ValueError(f'source {self.name!r}: kind must be one of '
                       f'{SOURCE_KINDS}, got {self.kind!r}')


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Everything the rest of bvae_jax knows of one data set; see the module doc.

  Attributes:
    name: family name; the config name without a subset.
    variants: the config names, each `name` or `name/<subset>`.
    sources: where the records come from, in order of preference.
    factor_names: names of the ground-truth factors; None: no ground truth.
    factor_sizes: values of each factor (None where only the prepared data
      tells); None: no ground truth.
    image_shape: (H, W, C).
    config_settings: config fields the data set sets, besides `num_channels`
      (which is `image_shape[-1]`).
    no_real_data_help: how to obtain real records, said when
      dataset_source='real' finds none; formatted with `subset`.
  """
  name: str
  variants: tuple[str, ...]
  sources: tuple[Source, ...]
  factor_names: tuple[str, ...] | None
  factor_sizes: tuple[int | None, ...] | None
  image_shape: tuple[int, int, int]
  config_settings: Mapping[str, Any]
  no_real_data_help: str = ''

  def __post_init__(self):
    if (self.factor_names is None) != (self.factor_sizes is None) or (
        self.factor_names is not None
        and len(self.factor_names) != len(self.factor_sizes)):
      raise ValueError(f'{self.name}: {self.factor_names} do not match the '
                       f'factor sizes {self.factor_sizes}')
    for variant in self.variants:
      if variant.partition('/')[0] != self.name:
        raise ValueError(f'{self.name}: variant {variant!r} is not '
                         f"'{self.name}' or '{self.name}/<subset>'")
    if not self.sources:
      raise ValueError(f'{self.name}: no sources')

  @property
  def source_kinds(self) -> tuple[str, ...]:
    """The kinds of source it has, in SOURCE_KINDS order."""
    return tuple(kind for kind in SOURCE_KINDS
                 if any(source.kind == kind for source in self.sources))

  def config_updates(self) -> dict[str, Any]:
    """The config fields `config_defaults.set_dataset` sets."""
    return {'num_channels': self.image_shape[-1], **self.config_settings}


def prepare(builder, what=None):
  """Prepares `builder` unless it already is; logs the time it took."""
  if not builder.is_prepared():
    start = time.perf_counter()
    logging.info('Preparing %s in %s (first use)%s.', builder.info.full_name,
                 builder.data_dir, f': {what}' if what else '')
    builder.download_and_prepare()
    logging.info('Prepared %s in %.1f s.', builder.info.full_name,
                 time.perf_counter() - start)
  return builder
