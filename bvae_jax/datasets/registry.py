r"""Data sets by name: the table of their specs, and the data-source rule.

Each data set is one `dataset_spec.DatasetSpec`, defined in its own module;
this module only lists them (SPECS) and opens them. `open_dataset(name,
source, data_dir)` (a run passes `config.dataset`, `config.dataset_source` and
`config.data_dir`) turns a data-set name into a `Dataset`: a prepared TFDS
builder, a reader of its images by record index, and, where the factors are
known, a `ground_truth.GroundTruthData` for the metrics.

  name                 records                                    factors
  dsprites[/tiny]      real dSprites if obtainable, else drawn    5
  color_dsprites[/tiny] dsprites, each record in a fixed colour   8
  dsprites_procedural[/tiny]  always drawn (no download)          5
  gaussian_blobs       drawn (Burgess et al. 2018, Fig. 2)        2
  chairs               3D Chairs, manual download (chairs3d)      3
  shapes3d             TFDS catalog `shapes3d`                    6
  celeb_a              TFDS catalog `celeb_a`, 64x64 crop         none

The data-source rule (`open_source`), for config.dataset_source:
  'auto'        the first that works of the data set's real sources, in the
                spec's order, else its procedural source. For `dsprites`:
                the TFDS catalog `dsprites` prepared in data_dir as
                array_record; our `dsprites_official` builder prepared in
                data_dir; `dsprites_official` downloading the official file
                now; else the procedural renderer. One log line says which,
                and why when it falls back.
  'real'        the same without the fallback: an error if no real data.
  'procedural'  the procedural source, never the network.
A data set with one kind of source refuses the other. The source chosen is in
`Dataset.source` and `Dataset.describe()`, which training writes to
`DIR/dataset.json` and to the saved config.

Every TFDS builder prepares atomically (into a temporary directory renamed on
success), so a failure leaves nothing half-written in data_dir.
"""

import dataclasses
from typing import Any, Callable

from absl import logging

from bvae_jax.datasets import chairs_tfds
from bvae_jax.datasets import color_dsprites
from bvae_jax.datasets import dataset_spec
from bvae_jax.datasets import dsprites_tfds
from bvae_jax.datasets import gaussian_blobs
from bvae_jax.datasets import ground_truth
from bvae_jax.datasets import tfds_catalog

# Every data set, in the order names are listed to users.
SPECS = (
    dsprites_tfds.DSPRITES,
    color_dsprites.SPEC,
    dsprites_tfds.DSPRITES_PROCEDURAL,
    gaussian_blobs.SPEC,
    chairs_tfds.SPEC,
    tfds_catalog.SHAPES3D,
    tfds_catalog.CELEB_A,
)
_SPEC_OF_NAME = {variant: spec for spec in SPECS for variant in spec.variants}
DATASET_NAMES = tuple(_SPEC_OF_NAME)
DATASET_SOURCES = ('auto',) + dataset_spec.SOURCE_KINDS
# What open_dataset raises when records cannot be had; the sources, in the
# data sets' modules, raise it, so it is defined with the specs.
DatasetUnavailableError = dataset_spec.DatasetUnavailableError


@dataclasses.dataclass
class Dataset:
  """An opened data set.

  Attributes:
    name: the config name, e.g. 'color_dsprites'.
    source: where the records come from, e.g. 'procedural', 'official',
      'tfds_catalog'.
    builder: the prepared TFDS builder holding the records.
    images: reader with `num_records` and `read_images(record_indices)`.
    observation_shape: (H, W, C).
    make_ground_truth: builds the GroundTruthData; None when the factors are
      unknown.
    opened_with: the `open_dataset` arguments (name, source setting, data_dir)
      that opened it, so another process can open the same records.
  """
  name: str
  source: str
  builder: Any
  images: Any
  observation_shape: tuple[int, int, int]
  make_ground_truth: Callable[[], ground_truth.GroundTruthData] | None
  opened_with: tuple[str, str, str | None] | None = None
  _ground_truth: Any = dataclasses.field(default=None, repr=False)

  @property
  def num_records(self):
    return self.images.num_records

  def ground_truth(self) -> ground_truth.GroundTruthData:
    """The data set's ground truth, built on first use.

    Raises:
      NoGroundTruthError: for a data set without known factors.
    """
    if self.make_ground_truth is None:
      with_factors = [name for name, spec in _SPEC_OF_NAME.items()
                      if spec.factor_names is not None]
      raise ground_truth.NoGroundTruthError(
          f'data set {self.name!r} has no ground-truth factors, so the '
          f'disentanglement metrics cannot use it; data sets with factors: '
          f'{with_factors}')
    if self._ground_truth is None:
      self._ground_truth = self.make_ground_truth()
    return self._ground_truth

  def describe(self) -> dict[str, Any]:
    """JSON-ready facts of the data set, saved with every run."""
    return {
        'name': self.name, 'source': self.source,
        'tfds_name': self.builder.info.full_name,
        'data_dir': str(self.builder.data_dir),
        'num_records': int(self.num_records),
        'observation_shape': list(self.observation_shape),
        'has_ground_truth': self.make_ground_truth is not None,
    }


def get_spec(name: str) -> dataset_spec.DatasetSpec:
  """The spec of config name `name` (e.g. 'dsprites/tiny').

  Raises:
    ValueError: on an unknown name, listing the known ones.
  """
  if name not in _SPEC_OF_NAME:
    raise ValueError(
        f'unknown dataset {name!r}; known: {", ".join(DATASET_NAMES)}')
  return _SPEC_OF_NAME[name]


def open_dataset(name: str, dataset_source: str = 'auto',
                 data_dir: str | None = None) -> Dataset:
  """Opens data set `name`, preparing its TFDS builder on first use.

  Args:
    name: a config name, e.g. 'dsprites' or 'dsprites/tiny' (config.dataset).
    dataset_source: 'auto', 'real' or 'procedural' (config.dataset_source;
      the module docstring's rule).
    data_dir: TFDS data dir (config.data_dir); None: TFDS's default.

  Raises:
    ValueError: on an unknown name (listing the known ones) or a source the
      data set does not have.
    DatasetUnavailableError: when the records cannot be obtained (says how to
      get them).
  """
  spec = get_spec(name)
  subset = name.partition('/')[2] or 'full'
  chosen, opened = open_source(spec, subset, dataset_source, data_dir)
  return Dataset(
      name=name, source=chosen.name, builder=opened.builder,
      images=opened.images, observation_shape=spec.image_shape,
      make_ground_truth=opened.make_ground_truth,
      opened_with=(name, dataset_source, data_dir))


def open_source(spec, subset, dataset_source, data_dir):
  """The data-source rule of the module docstring: picks and opens a source.

  Args:
    spec: the data set's DatasetSpec.
    subset: e.g. 'full' or 'tiny'.
    dataset_source: 'auto', 'real' or 'procedural'.
    data_dir: TFDS data dir; None for TFDS's default.

  Returns:
    (the dataset_spec.Source chosen, its dataset_spec.Opened records). One
    log line says which, and why when it fell back.

  Raises:
    ValueError: on a source name not in DATASET_SOURCES, or one the data set
      does not have.
    DatasetUnavailableError: for 'real' (or a set without a procedural
      source) when no real source can be had; says why and how to get one.
  """
  if dataset_source not in DATASET_SOURCES:
    raise ValueError(f'config.dataset_source must be one of {DATASET_SOURCES}, '
                     f'got {dataset_source!r}')
  if dataset_source != 'auto' and dataset_source not in spec.source_kinds:
    raise ValueError(
        f'config.dataset_source={dataset_source!r}: data set {spec.name!r} '
        f"has only a {spec.source_kinds[0]} source; use 'auto'")
  real = [source for source in spec.sources if source.kind == 'real'
          and (source.subsets is None or subset in source.subsets)]
  reasons = []
  if dataset_source != 'procedural':
    for source in real:
      try:
        opened = source.open_fn(subset, data_dir)
      except dataset_spec.SourceUnavailableError as error:
        reasons.append(str(error))
        continue
      _log_source(spec, source, opened, why='')
      return source, opened
  why = '; '.join(reasons)
  procedural = [s for s in spec.sources if s.kind == 'procedural']
  if dataset_source == 'real' or not procedural:
    raise DatasetUnavailableError(
        f'{spec.name}: no real data ({why}). '
        + spec.no_real_data_help.format(subset=subset))
  source = procedural[0]
  opened = source.open_fn(subset, data_dir)
  _log_source(spec, source, opened,
              why=f'fallback: {why}' if reasons else 'as configured')
  return source, opened


def _log_source(spec, source, opened, why):
  logging.info('Data set %s: source = %s.', spec.name, source.log_text.format(
      tfds_name=opened.builder.info.full_name,
      data_dir=opened.builder.data_dir, why=why))
