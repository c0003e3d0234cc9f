"""Which of numpy's SIMD kernels this process runs, for the bit-exact DCI tests.

metrics/gradient_boosting.py reproduces sklearn's GradientBoostingClassifier
bit for bit when numpy's exp, log and reductions round as the C library does
(sklearn's Cython calls it): with numpy's AVX2 kernels, which x86-64 CPUs
without AVX-512 run. On an AVX-512 CPU numpy picks kernels that round some
results differently, a near-tie split can flip, and trees differ
(docs/metrics.md). Tests that claim bit-for-bit agreement are marked
`requires_avx2_kernels`: they run in the suite's own process where numpy
already uses AVX2 kernels, and otherwise in a child process with
NPY_DISABLE_CPU_FEATURES=AVX2_ONLY (tests/test_metric_dci_kernels.py), so
every machine checks them, and no test process but that child changes what
numpy runs.
"""

import numpy as np
import pytest

# numpy ≥ 2.4's dispatch names of every x86-64 level above AVX2.
AVX2_ONLY = 'X86_V4 AVX512_ICL AVX512_SPR'

# X86_V4 is numpy's name for the AVX-512 (Skylake-X) level.
NATIVE_AVX512 = bool(np._core._multiarray_umath.__cpu_features__.get(  # pylint: disable=protected-access
    'AVX512_SKX', False))

requires_avx2_kernels = pytest.mark.skipif(
    NATIVE_AVX512,
    reason='bit-for-bit with sklearn needs numpy\'s AVX2 kernels; '
    'tests/test_metric_dci_kernels.py runs this test in a child process '
    'with them')
