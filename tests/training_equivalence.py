"""How closely two runs of the same training must agree, and why.

Two runs that compute the same training with a different layout (1 vs 8
devices, 1 vs 2 processes, a member of a vmapped sweep vs the model alone) add
their floating-point sums in a different order, so their gradients differ in
the last bits (~1e-7 relative). Adam then divides each gradient element by its
own running RMS: an element whose gradient is a near-cancelling sum can take a
visibly different step. Kingma & Ba (2015, Sec. 2.1) bound Adam's step by
α·(1 − β1)/√(1 − β2) ≈ 3.16·α for optax's β1 = 0.9, β2 = 0.999 (≲ α
usually). So:

  * the per-step loss terms and the gradient norm, sums over everything, must
    agree to rtol 1e-4: a wrong batch, noise draw, hyperparameter, or a sum
    instead of a mean over devices changes them far more (the gradient norm
    by the device count). The KL of these first steps is itself near zero
    (~0.003–0.006 nats, a near-cancelling sum), so it also gets an absolute
    floor of 2e-4 nats: measured on an AVX-512 Xeon, two layouts' KLs
    differed by up to 8.9e-5 nats (1.4%) by step 6, where β = 1 and β = 4
    differ by ≥ 9e-4 from step 2 on;
  * every parameter must agree within 2 · 3.16 · learning_rate · steps (two
    trajectories each moving at most that far), and at least
    95% of them within 1e-5 (measured: all of them for 8 vs 1 devices, 97.4%
    for the worst case seen, 2 vs 1 devices at seed 0 after 6 steps).

The drift bound holds for any two Adam runs from one start, so it only
catches a diverging run; the 95% criterion is what tells a layout from a
different training: tests/test_training_equivalence.py shows another batch
order (9.1% within 1e-5) and β = 4.2 for 4 (26.2%) failing it while staying
inside the bound.
"""

import jax
import numpy as np

from event_files import read_scalars

TRAJECTORY_TAGS = ('loss', 'reconstruction', 'kl_total', 'grad_norm')
METRIC_RTOL = 1e-4
KL_ATOL = 2e-4  # Nats; see the module docstring.
CLOSE_ATOL = 1e-5
MIN_CLOSE_FRACTION = 0.95
ADAM_STEP_BOUND = 0.1 / 0.001**0.5  # (1 − β1)/√(1 − β2), in units of α.


def assert_same_trajectory(logdir_a, logdir_b, steps):
  """The logged per-step metrics of two runs agree (log_every_steps=1)."""
  a = read_scalars(logdir_a, TRAJECTORY_TAGS)
  b = read_scalars(logdir_b, TRAJECTORY_TAGS)
  for tag in TRAJECTORY_TAGS:
    assert sorted(a[tag]) == sorted(b[tag]) == list(range(1, steps + 1)), tag
    np.testing.assert_allclose([a[tag][s] for s in sorted(a[tag])],
                               [b[tag][s] for s in sorted(b[tag])],
                               rtol=METRIC_RTOL,
                               atol=KL_ATOL if tag == 'kl_total' else 0,
                               err_msg=tag)


def assert_same_params(params_a, params_b, *, learning_rate, steps):
  """Parameters agree within the Adam drift bound (module docstring)."""
  leaves_a = jax.tree.leaves(jax.device_get(params_a))
  leaves_b = jax.tree.leaves(jax.device_get(params_b))
  assert len(leaves_a) == len(leaves_b)
  diffs = np.concatenate([np.abs(np.asarray(x) - np.asarray(y)).ravel()
                          for x, y in zip(leaves_a, leaves_b)])
  assert np.all(np.isfinite(diffs))
  assert diffs.max() <= 2 * ADAM_STEP_BOUND * learning_rate * steps, (
      diffs.max())
  close = np.mean(diffs <= CLOSE_ATOL)
  assert close >= MIN_CLOSE_FRACTION, close
