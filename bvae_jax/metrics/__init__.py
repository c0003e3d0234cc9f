"""Disentanglement metrics, one module each, found by name: `metrics.get(name)`.

Each metric uses disentanglement_lib's definitions and returns its dict keys
(Locatello et al. 2019, disentanglement_lib/evaluation/metrics/*.py). The
per-metric functions take plain arrays (codes (num_points, num_codes), factors
(num_points, num_factors) ints), or a ground-truth data set and a
representation function. Tests call them directly.

Beside those functions, a metric module of this package defines the entry
point that `metrics.suite` calls:

* `SUITE_POSITION`: an int. The suite runs the metrics in ascending
  order, and results list them in the same order. The six metrics use
  10, ..., 60, which leaves room between them.
* `USES_SHARED_CODES`: True when the metric reads the codes that
  `sampling.draw_shared_codes` draws once for all such metrics
  (disentanglement_lib's MIG, modularity, DCI and SAP all draw the same
  points). False when it draws its own points from
  `np.random.RandomState(eval_config.seed)` through
  `inputs.representation_fn`.
* `image_count(eval_config) -> int`: how many images `compute` encodes beyond
  the shared codes. The suite uses it for progress and ETA.
* `compute(inputs, eval_config) -> dict[str, float]`: the scores.
  `inputs` is a `sampling.MetricInputs`; `eval_config` is `config.eval`.

Adding a metric is adding such a module and its tests (docs/extending.md).
`names()` finds the new module, and `experiment_config.EVAL_METRICS` (the
default of `config.eval.metrics`) then includes it.
"""

import functools
import importlib
import pkgutil
from types import ModuleType

# Modules of this package that are building blocks, not metrics of the suite
# (udr scores sets of models, not one: bvae_jax/sweeps/udr_selection.py runs it).
_BUILDING_BLOCKS = ('code_table', 'gradient_boosting', 'mutual_info',
                    'sampling', 'suite', 'udr')


@functools.cache  # The package's modules do not change while it runs.
def names() -> tuple[str, ...]:
  """The metrics of this package, in suite order (by SUITE_POSITION)."""
  found = [module.name for module in pkgutil.iter_modules(__path__)
           if module.name not in _BUILDING_BLOCKS
           and not module.name.startswith('_')]
  return tuple(sorted(found, key=lambda name: (
      importlib.import_module(f'{__name__}.{name}').SUITE_POSITION, name)))


def get(name: str) -> ModuleType:
  """The metric module `name`.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if name not in names():
    raise ValueError(
        f'config.eval.metrics must name some of {names()}, got {name!r}')
  return importlib.import_module(f'{__name__}.{name}')
