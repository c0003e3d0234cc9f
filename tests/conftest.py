"""Test-wide setup: two host devices, so every training test runs data-parallel.

Set before JAX creates its CPU backend (conftest is imported before the tests).
A caller's own XLA_FLAGS device count wins.
"""

import os

if '--xla_force_host_platform_device_count' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_force_host_platform_device_count=2').strip()
