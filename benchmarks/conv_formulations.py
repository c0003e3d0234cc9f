r"""Training-step throughput of each strided-convolution formulation on XLA:CPU.

Times the full β-VAE training step (forward, Bernoulli NLL summed over pixels
and averaged over the batch, analytic KL to N(0, I), backward, optax.adam
update), jitted with the state donated, in float32, for every `conv_impl` of
`bvae_jax.models.conv_layers`, with the batch split over 1 or more forced host
devices (XLA:CPU runs most of a step on one core; a second device is how the
step uses a second core). Optionally times the same step in PyTorch, eager
and through torch.compile (`benchmarks/torch_train_step.py`), in the same
rounds, for the ratios.

This machine's speed drifts from minute to minute, so the measurements are
interleaved: every round measures every configuration once, and the report
gives the median over rounds. Each measurement runs in its own worker
process (sharing a compilation cache): XLA's device count is fixed per
process, and XLA:CPU's in-process all-reduce occasionally deadlocks with 2
devices on 2 cores (XLA aborts the process after 40 s); a failed worker is
reported and counted, and the run carries on.

Run from the repository root:

  python -m benchmarks.conv_formulations --seconds 10 --rounds 3 --compare_torch [--torch_python=VENV/bin/python]

The environment is passed on to the workers (and to PyTorch), e.g. prefix
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295`
to keep freed memory instead of returning it to the OS (page faults are
expensive in this VM). The last line printed is JSON: {"results": [{"conv_impl",
"devices", "images_per_sec", "all_rounds", "vs_torch", "vs_torch_compiled"},
...], "torch": {...}, "torch_compiled": {...}, ...}.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from benchmarks import child_process
from bvae_jax.models import conv_layers
from bvae_jax.models import vae
from bvae_jax.training import run_ahead

LEARNING_RATE = 5e-4  # Burgess et al. train with Adam at 5e-4.
WARMUP_STEPS = 3


def negative_elbo(params, model, images, noise_rng):
  """Bernoulli reconstruction NLL + KL(q(z|x) || N(0, I)), batch-averaged."""
  outputs = model.apply(params, images, noise_rng)
  logits, mean, log_var = outputs.decoder_output, outputs.mean, outputs.log_var
  reconstruction = optax.sigmoid_binary_cross_entropy(logits, images)
  reconstruction = reconstruction.sum(axis=(1, 2, 3)).mean()
  kl = 0.5 * (jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var)
  return reconstruction + kl.sum(axis=-1).mean()


def build_train_step(model, optimizer, mesh: Mesh):
  """Returns init_state(rng) and a jitted, donating train_step(state, images).

  Parameters and optimizer state are replicated over `mesh`; the batch is
  split along the mesh's 'data' axis.
  """
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharded = NamedSharding(mesh, PartitionSpec('data'))
  noise_base_rng = jax.random.PRNGKey(1)

  def train_step(state, images):
    params, opt_state, step = state
    noise_rng = jax.random.fold_in(noise_base_rng, step)
    loss, grads = jax.value_and_grad(negative_elbo)(
        params, model, images, noise_rng)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, step + 1), loss

  def init_state(rng, images):
    params = model.init(rng, images[:1], rng)
    state = (params, optimizer.init(params), jnp.zeros((), jnp.int32))
    return jax.device_put(state, replicated)

  jitted_step = jax.jit(
      train_step,
      in_shardings=(replicated, batch_sharded),
      out_shardings=(replicated, replicated),
      donate_argnums=0)
  return init_state, jitted_step, batch_sharded


def time_train_step(conv_impl: str, num_devices: int, batch_size: int,
                    num_channels: int, seconds: float) -> float:
  """Returns images/s of the jitted training step, after compile and warm-up."""
  mesh = Mesh(np.array(jax.devices()[:num_devices]), ('data',))
  model = vae.VAE(latent_dim=10, num_channels=num_channels,
                     conv_impl=conv_impl)
  init_state, train_step, batch_sharding = build_train_step(
      model, optax.adam(LEARNING_RATE), mesh)
  # Binary images like dSprites; the data stay on device so only the step is
  # timed, not an input pipeline.
  host_images = np.random.default_rng(0).random(
      (batch_size, vae.IMAGE_SIZE, vae.IMAGE_SIZE, num_channels)) < 0.1
  images = jax.device_put(host_images.astype(np.float32), batch_sharding)
  state = init_state(jax.random.PRNGKey(0), images)
  for _ in range(WARMUP_STEPS):
    state, loss = train_step(state, images)
  jax.block_until_ready(loss)
  if not np.isfinite(float(loss)):
    raise FloatingPointError(f'{conv_impl}: non-finite loss {float(loss)}.')

  steps = 0
  start = time.perf_counter()
  # Dispatch is asynchronous: keep queuing steps until the time is up, a few
  # ahead of the device as training does (an unbounded queue deadlocks
  # XLA:CPU's all-reduce: bvae_jax/training/run_ahead.py), then wait for the last one
  # so that the elapsed time covers all the work.
  in_flight = run_ahead.RunAhead()
  while time.perf_counter() - start < seconds:
    state, loss = train_step(state, images)
    in_flight.admit(loss)
    steps += 1
  jax.block_until_ready(state)
  elapsed = time.perf_counter() - start
  return steps * batch_size / elapsed


def _run_worker(args) -> None:
  """Measures one conv_impl on `args.worker_devices` devices; prints JSON."""
  # Must happen before JAX initialises its CPU backend.
  jax.config.update('jax_num_cpu_devices', args.worker_devices)
  (impl,) = args.conv_impls
  rate = time_train_step(impl, args.worker_devices, args.batch_size,
                         args.num_channels, args.seconds)
  print(json.dumps({'images_per_sec': rate}))


def _last_json_line(command: list[str], env: dict[str, str],
                    timeout_s: float) -> dict | None:
  """Runs a measurement process; returns its last stdout line as JSON, or
  None (after saying why) if it failed or hung."""
  try:
    completed = subprocess.run(command, env=env, capture_output=True,
                               text=True, timeout=timeout_s, check=False)
  except subprocess.TimeoutExpired:
    print(f'  FAILED (no result after {timeout_s:.0f} s): {" ".join(command)}')
    return None
  if completed.returncode != 0:
    # XLA:CPU's in-process all-reduce has deadlocked here with 2 devices on 2
    # cores; XLA then aborts after 40 s. Report it and carry on.
    reasons = [line for line in completed.stderr.splitlines()
               if 'Termination timeout' in line or 'Error' in line]
    reason = (reasons or completed.stderr.splitlines()[-1:] or ['?'])[0]
    print(f'  FAILED (exit {completed.returncode}): {reason[:300]}')
    return None
  return child_process.parse_result(completed.stdout)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--num_channels', type=int, default=1)
  parser.add_argument('--seconds', type=float, default=10.0,
                      help='Timed duration of each measurement.')
  parser.add_argument('--rounds', type=int, default=3,
                      help='Measurements per configuration, interleaved.')
  parser.add_argument('--host_devices', type=int, nargs='+', default=[1, 2],
                      help='Device counts to split the batch over.')
  parser.add_argument('--conv_impls', nargs='+',
                      default=list(conv_layers.CONV_IMPLS),
                      choices=conv_layers.CONV_IMPLS)
  parser.add_argument('--compare_torch', action='store_true',
                      help='Also time benchmarks/torch_train_step.py each '
                      'round, eager and torch.compile\'d.')
  parser.add_argument('--torch_python', default=sys.executable,
                      help='The Python that has torch (it is not a '
                      'dependency of bvae_jax; a separate venv is fine).')
  parser.add_argument('--worker_devices', type=int, default=None,
                      help=argparse.SUPPRESS)  # Internal: run one worker.
  args = parser.parse_args()
  if args.worker_devices is not None:
    _run_worker(args)
    return

  common = ['--batch_size', str(args.batch_size), '--num_channels',
            str(args.num_channels), '--seconds', str(args.seconds)]
  # Compilation, warm-up and the measurement take well under this; XLA gives
  # up on a stuck all-reduce after 60 s.
  timeout_s = args.seconds + 240
  measurements = {(impl, devices): [] for impl in args.conv_impls
                  for devices in args.host_devices}
  failures = {config: 0 for config in measurements}
  torch_rates = {'eager': [], 'compiled': []}
  with tempfile.TemporaryDirectory() as cache_dir:
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
    for round_index in range(args.rounds):
      for impl, devices in measurements:
        result = _last_json_line(
            [sys.executable, '-m', 'benchmarks.conv_formulations',
             '--worker_devices', str(devices), '--conv_impls', impl, *common],
            env, timeout_s)
        if result is None:
          failures[(impl, devices)] += 1
          continue
        measurements[(impl, devices)].append(result['images_per_sec'])
        print(f'round {round_index}: conv_impl={impl:15s} devices={devices} '
              f'{result["images_per_sec"]:8.1f} images/s', flush=True)
      for mode in (('eager', 'compiled') if args.compare_torch else ()):
        result = _last_json_line(
            [args.torch_python, '-m', 'benchmarks.torch_train_step',
             '--rounds', '1', *common] +
            (['--compile'] if mode == 'compiled' else []), env, timeout_s)
        if result is not None:
          torch_rates[mode].append(result['images_per_sec'])
          print(f'round {round_index}: pytorch {mode} ({result["device"]}) '
                f'{torch_rates[mode][-1]:8.1f} images/s', flush=True)

  torch_medians = {mode: statistics.median(rates)
                   for mode, rates in torch_rates.items() if rates}
  torch_median = torch_medians.get('eager')
  results = []
  for (impl, devices), rates in measurements.items():
    median = statistics.median(rates) if rates else None
    result = {'conv_impl': impl, 'devices': devices,
              'images_per_sec': median and round(median, 1),
              'all_rounds': [round(rate, 1) for rate in rates],
              'failed_runs': failures[(impl, devices)]}
    line = f'conv_impl={impl:15s} devices={devices} median '
    line += f'{median:8.1f} images/s' if median else '     n/a'
    if torch_median and median:
      result['vs_torch'] = round(median / torch_median, 2)
      line += f'  ({result["vs_torch"]:.2f}× PyTorch eager'
      if 'compiled' in torch_medians:
        result['vs_torch_compiled'] = round(
            median / torch_medians['compiled'], 2)
        line += f', {result["vs_torch_compiled"]:.2f}× compiled'
      line += ')'
    if failures[(impl, devices)]:
      line += f'  [{failures[(impl, devices)]} failed run(s)]'
    results.append(result)
    print(line)
  summary = {'results': results, 'batch_size': args.batch_size,
             'num_channels': args.num_channels, 'seconds': args.seconds,
             'rounds': args.rounds, 'jax_version': jax.__version__,
             'glibc_tunables': os.environ.get('GLIBC_TUNABLES', '')}
  if torch_median:
    summary['torch'] = {'images_per_sec': round(torch_median, 1),
                        'all_rounds': [round(r, 1)
                                       for r in torch_rates['eager']]}
    print(f'pytorch eager median {torch_median:8.1f} images/s')
  if 'compiled' in torch_medians:
    summary['torch_compiled'] = {
        'images_per_sec': round(torch_medians['compiled'], 1),
        'all_rounds': [round(r, 1) for r in torch_rates['compiled']]}
    print(f'pytorch compiled median {torch_medians["compiled"]:8.1f} images/s')
  print(json.dumps(summary))


if __name__ == '__main__':
  main()
