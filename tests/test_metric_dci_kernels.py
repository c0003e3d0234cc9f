"""DCI against sklearn on the kernels this machine runs, and bit for bit on AVX2.

metrics/gradient_boosting.py is sklearn's GradientBoostingClassifier refitted;
docs/metrics.md says where the two agree exactly (numpy's AVX2 kernels) and
within what elsewhere. `eval.dci_classifier='sklearn'` is the reference path.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import dci_kernels
from bvae_jax import config_defaults
from bvae_jax import experiment_config
from bvae_jax.metrics import dci
from bvae_jax.metrics import sampling
import numpy_kernels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests that claim bit-for-bit agreement (numpy_kernels.requires_avx2_kernels).
BIT_EXACT_FILES = ('tests/test_metric_gradient_boosting.py',
                   'tests/test_metric_dci.py')


@pytest.mark.slow
@pytest.mark.skipif(not numpy_kernels.NATIVE_AVX512,
                    reason='numpy runs its AVX2 kernels here, so the '
                    'bit-exact tests ran in this process')
def test_bit_exact_tests_pass_in_a_child_with_avx2_kernels():
  env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=numpy_kernels.AVX2_ONLY,
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-n', '0', '-p',
       'no:cacheprovider', *BIT_EXACT_FILES], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=900)
  summary = result.stdout.strip().splitlines()[-1]
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
  # Every test ran: none skipped, so the AVX2 kernels were really in use.
  assert re.fullmatch(r'\d+ passed in .*', summary), summary


@pytest.mark.slow
@pytest.mark.parametrize('seed', [0, 1])
def test_fast_dci_is_within_tolerance_of_sklearns_on_this_machines_kernels(
    seed):
  # On AVX2 kernels the two are equal; on AVX-512 a near-tie split can flip,
  # which moves an importance and so the scores by a little: by at most
  # 0.002 (one test point in 500) over benchmarks/dci_kernels.py's 8 data
  # sets on an AVX-512 Xeon (docs/benchmarks.md, "DCI: the refit against
  # sklearn"), which include these two. The bound is 2.5 times that.
  data = dci_kernels.mixed_codes(seed)
  fast = dci.dci(*data, n_jobs=1)
  reference = dci.dci(*data, n_jobs=1, classifier='sklearn')
  for name, value in reference.items():
    assert fast[name] == pytest.approx(value, abs=0.005), name


def test_the_sklearn_path_is_sklearns_classifier():
  data = dci_kernels.mixed_codes(2, num_train=300, num_test=100)
  importance, _, _ = dci.importance_matrix(*data, n_jobs=1,
                                           classifier='sklearn')
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top
  codes_train, factors_train = data[0], data[1]
  for j in range(factors_train.shape[1]):
    model = ensemble.GradientBoostingClassifier(**dci.GBT_PARAMS).fit(
        codes_train, factors_train[:, j])
    np.testing.assert_array_equal(importance[:, j],
                                  np.abs(model.feature_importances_))


def test_the_suite_reads_eval_dci_classifier(monkeypatch):
  seen = []
  monkeypatch.setattr(dci, 'dci', lambda *a, **k: seen.append(k) or {})
  config = config_defaults.base_config()
  inputs = sampling.MetricInputs(*([None] * len(
      sampling.MetricInputs.__dataclass_fields__)))
  dci.compute(inputs, config.eval)
  config.eval.dci_classifier = 'sklearn'
  dci.compute(inputs, config.eval)
  assert seen == [{'classifier': 'fast'}, {'classifier': 'sklearn'}]
  config.eval.dci_classifier = 'xgboost'
  config.eval.metrics = ('dci',)
  with pytest.raises(ValueError, match="config.eval.dci_classifier must be "
                     "'fast' or 'sklearn', got 'xgboost'"):
    experiment_config.resolve(config)
  with pytest.raises(ValueError, match='DCI classifier must be one of'):
    dci.importance_matrix(*dci_kernels.mixed_codes(0, 20, 10),
                          classifier='xgboost')
