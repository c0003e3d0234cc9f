"""Tests of devices.default_host_device_count: the CPU device count rule."""

import pytest

from bvae_jax.core import devices


@pytest.mark.parametrize('batch_size, cores, expected', [
    (64, 2, 4),    # Two per core: the measured optimum on the 2-core VM.
    (64, 1, 2),
    (64, 16, 32),
    (6, 2, 3),     # The largest count ≤ 4 that divides the batch.
    (7, 2, 1),
    (64, 0, 2),    # An unknown core count counts as one core.
])
def test_default_count_is_largest_divisor_up_to_two_per_core(batch_size, cores,
                                                             expected):
  assert devices.DEVICES_PER_CORE == 2
  assert devices.default_host_device_count(batch_size, cores) == expected
