#!/usr/bin/env bash
# The GPU measurements of issue 12 ("Fast on every machine"), as one script
# for a machine with one NVIDIA GPU (docs/gpu.md says what each stage
# measures and how to read the results).
#
# Stages, each under its own `timeout` and inside one overall budget
# (GPU_SUITE_BUDGET_S, default 540 s, for a job limited to 10 minutes):
#   env              versions, devices, GPU memory; stops the suite if JAX sees
#                    no GPU (minutes of device time would be spent on a CPU).
#   train_step_64    python -m benchmarks.train_step --batch_size=64 --seconds=10
#   train_step_1024  the same at --batch_size=1024 (both: matmul and lax convs)
#   sweep            python -m benchmarks.sweep --members=32 --seconds=10
#                    --member_layouts=vmap,map,loop: one model against a
#                    sweep of 32, batched (vmap, the GPU default), members in
#                    turn inside the step (map) and one call per member
#                    (loop); goal: the 32-member step takes < 4x the
#                    1-member step.
#   train            configs/capacity.py (paper scale: batch 64, γ = 1000, ...)
#                    with --config.data_on_device=True for GPU_SUITE_TRAIN_STEPS
#                    steps (default 10,000); steady steps/s and the predicted
#                    wall time of 100,000 steps. The procedural dSprites are
#                    prepared in the background while the benchmarks run.
#   metrics          python -m benchmarks.metrics on that run's last checkpoint.
#   beta_sweep       not a benchmark, and not in the default stages: the β-sweep
#                    study of issue 14 at its real size (configs/sweep_beta.py:
#                    7 β × 3 seeds, 10 epochs of 50,000 images, one vmapped
#                    sweep), its metrics, figures, Table 1 and UDR, copied to
#                    $OUT/beta_sweep/. Alone: GPU_SUITE_STAGES="env beta_sweep".
#
# Results: $OUT/results.jsonl (one JSON object a stage: rc, seconds, and the
# stage's own JSON result), $OUT/suite.log (everything printed), and
# $OUT/traversal.png (the trained model's latent traversals).
#
# Run it from the repository root, with the wheels below in .whl/:
#   bash benchmarks/gpu_suite.sh
# A rerun of some stages only: GPU_SUITE_STAGES="train metrics" bash ...
# Try it on a CPU first (minutes; tiny sizes, nothing needs a GPU):
#   GPU_SUITE_TINY=1 PYTHON=.venv/bin/python OUT=/tmp/suite_out bash benchmarks/gpu_suite.sh
#
# The machine it is written for has Python 3.12 with
# jax 0.11.2 + jax-cuda13-plugin (CUDA 13, driver 580), flax, optax,
# orbax-checkpoint, chex, numpy, scipy, scikit-learn, matplotlib, pillow,
# absl-py, etils, tensorstore; no network. So the suite runs on that JAX (we
# pin 0.10.2; the env stage records every version), and these packages of
# requirements.txt that it lacks travel as wheels in .whl/ (ignored by git;
# ~11 MB), made here once:
#
#   mkdir -p .git/info .whl && echo /.whl/ >> .git/info/exclude
#   P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#      --platform manylinux1_x86_64 -d .whl"
#   python -m pip download $P grain==0.2.18 array-record==0.8.6 \
#      tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0 \
#      googleapis-common-protos==1.76.0 ml-collections==1.1.0 \
#      tensorboardX==2.6.5 immutabledict==4.3.1 toml==0.10.2 portpicker==1.6.0 \
#      protobuf==7.36.2 dm-tree==0.1.10 simple-parsing==0.1.9 \
#      docstring-parser==0.18.0 termcolor==3.3.0
#   python -m pip wheel --no-deps -w .whl promise==2.3   # an sdist only
#
# (protobuf travels too: tensorflow-metadata's generated code needs a runtime
# at least as new as the one that generated it.)
#
# Only if a machine has no CUDA JAX: jax[cuda12] at our pinned version is
# these wheels (resolved with `pip install --dry-run --report` for Python
# 3.12), fetched with the same $P:
#
#   python -m pip download $P jax==0.10.2 jaxlib==0.10.2 \
#      jax-cuda12-plugin==0.10.2 jax-cuda12-pjrt==0.10.2 ml_dtypes==0.6.0 \
#      opt_einsum==3.4.0 scipy==1.17.1 numpy==2.4.6 \
#      nvidia-cublas-cu12==12.9.3.13 nvidia-cuda-cupti-cu12==12.8.90 \
#      nvidia-cuda-nvcc-cu12==12.9.86 nvidia-cuda-nvrtc-cu12==12.9.86 \
#      nvidia-cuda-runtime-cu12==12.9.79 nvidia-cudnn-cu12==9.28.0.42 \
#      nvidia-cufft-cu12==11.4.1.4 nvidia-cusolver-cu12==11.7.5.82 \
#      nvidia-cusparse-cu12==12.5.10.65 nvidia-nccl-cu12==2.32.3 \
#      nvidia-nvjitlink-cu12==12.9.86 nvidia-nvshmem-cu12==3.8.0 \
#      nvidia-cuda-cccl-cu12==12.9.27
#
# They are too large to copy to a machine over a small upload limit (jaxlib
# alone is hundreds of MB).

set -u -o pipefail

PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_suite_out}
WORK=${GPU_SUITE_WORK:-/tmp/gpu_suite}
BUDGET_S=${GPU_SUITE_BUDGET_S:-540}
STAGES=${GPU_SUITE_STAGES:-env train_step_64 train_step_1024 sweep train metrics}
TINY=${GPU_SUITE_TINY:-0}

if [[ $TINY == 1 ]]; then  # Every stage, at sizes a 2-core CPU runs in minutes.
  SMALL_BATCH=8 LARGE_BATCH=16 SECONDS_EACH=1 MEMBERS=2
  TRAIN_STEPS=${GPU_SUITE_TRAIN_STEPS:-20} LOG_EVERY=5
  DATA_OVERRIDES=(--config.dataset=dsprites/tiny --config.checkpoint_every_steps=10)
  EVAL_OVERRIDES=(--config.eval.num_train=300 --config.eval.num_test=150
                  --config.eval.num_variance_estimate=300 --config.eval.batch_size=8)
  BETA_SWEEP_OVERRIDES=(--config.num_train_steps=8 --config.batch_size=8
                        --config.train_subset_size=0
                        --config.checkpoint_every_steps=8
                        --config.log_every_steps=4
                        "--config.sweep.seeds=(0, 1)"
                        "--config.sweep.grid.beta=(1.0, 5.0, 10.0)")
else
  SMALL_BATCH=64 LARGE_BATCH=1024 SECONDS_EACH=10 MEMBERS=32
  TRAIN_STEPS=${GPU_SUITE_TRAIN_STEPS:-10000} LOG_EVERY=1000
  DATA_OVERRIDES=()
  EVAL_OVERRIDES=()
  BETA_SWEEP_OVERRIDES=(--config.log_every_steps=1000)
fi

START=$(date +%s)
DEADLINE=$((START + BUDGET_S))
mkdir -p "$OUT" "$WORK"
LOG=$OUT/suite.log
RESULTS=$OUT/results.jsonl
DATA=$WORK/tfds
RUN=$WORK/capacity_run
BETA_RUN=$WORK/beta_sweep
export PYTHONUNBUFFERED=1
# Where the machine lacks our packages and the wheels travelled, install them
# ahead of its own (a development venv has them, and needs none).
if ! "$PYTHON" -c 'import grain, ml_collections, tensorboardX, tensorflow_datasets' \
    2> /dev/null && compgen -G '.whl/*.whl' > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$WORK/site" .whl/*.whl 2>&1 | tee -a "$LOG" || exit 2
  export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi

wanted() { [[ " $STAGES " == *" $1 "* ]]; }

# Each stage's record: its rc, seconds and the JSON its command printed last,
# with what the stage derives from it (sweep: the time ratio; train: steps/s
# and the 100k-step prediction).
cat > "$WORK/summarise.py" <<'PY'
import json, re, sys

stage, rc, seconds, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
text = open(path, errors='replace').read()
record = {'stage': stage, 'rc': rc, 'timed_out': rc in (124, 137),
          'seconds': round(seconds, 1)}
for line in reversed(text.splitlines()):
  if line.startswith('{'):
    try:
      record['result'] = json.loads(line)
      break
    except ValueError:
      pass
result = record.get('result')
if stage == 'sweep' and result and result.get('ratio'):
  # ratio = the sweep's member-images/s over one model's images/s, so one
  # sweep step takes members / ratio times one model's step.
  record['step_time_ratio'] = round(result['members'] / result['ratio'], 3)
  record['goal_step_time_ratio_below_4'] = record['step_time_ratio'] < 4
  record['step_time_ratio_per_layout'] = {
      name: round(result['members'] / layout['ratio_to_sequential'], 3)
      for name, layout in result.get('layouts', {}).items()
      if name != 'single' and layout.get('ratio_to_sequential')}
if stage == 'train':
  steps = [(int(s), float(r)) for s, _, r in re.findall(
      r'Step (\d+)/(\d+), ([\d.]+) steps/s', text)]
  loaded = re.findall(r'data_on_device: .*', text)
  record['data_on_device_log'] = loaded[-1] if loaded else None
  if steps:
    # The first interval holds compilation: the steady rate is over the rest.
    intervals = [(b - a, r) for (a, _), (b, r) in zip(steps, steps[1:])
                 if r > 0] or [(steps[0][0], steps[0][1])]
    moved = sum(n for n, _ in intervals)
    rate = moved / sum(n / r for n, r in intervals)
    last = steps[-1][0]
    overhead = seconds - last / rate  # Start, data, compile, last save.
    record.update(
        steps_done=last, steady_steps_per_sec=round(rate, 1),
        steady_images_per_sec=round(rate * 64, 0),
        overhead_seconds=round(overhead, 1),
        predicted_100k_steps_seconds=round(overhead + 100_000 / rate, 0),
        predicted_100k_steps_hours=round((overhead + 100_000 / rate) / 3600, 3))
print(json.dumps(record))
PY

# stage NAME MAX_SECONDS COMMAND...: runs COMMAND under a timeout (the
# smaller of MAX_SECONDS and what is left of the budget), appends its output
# to the log and its record to results.jsonl.
stage() {
  local name=$1 max=$2
  shift 2
  wanted "$name" || return 0
  local left=$((DEADLINE - $(date +%s)))
  local limit=$((max < left ? max : left))
  if ((limit < 15)); then
    echo "=== $name: skipped, ${left}s of the budget left" | tee -a "$LOG"
    echo "{\"stage\": \"$name\", \"skipped\": \"budget\"}" >> "$RESULTS"
    return 0
  fi
  echo "=== $name (timeout ${limit}s): $*" | tee -a "$LOG"
  local t0 rc ms
  t0=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" > "$WORK/$name.out"
  rc=${PIPESTATUS[0]}
  ms=$((($(date +%s%N) - t0) / 1000000))
  "$PYTHON" "$WORK/summarise.py" "$name" "$rc" "$((ms / 1000)).$((ms % 1000 / 100))" \
      "$WORK/$name.out" \
      | tee -a "$LOG" >> "$RESULTS"
  return "$rc"
}

echo "=== gpu_suite: stages [$STAGES], budget ${BUDGET_S}s, tiny=$TINY, $(date -u)" | tee -a "$LOG"

stage env 60 "$PYTHON" - "$TINY" <<'PY'
import importlib.metadata as md, json, subprocess, sys
import jax
versions = {}
for name in ('jax', 'jaxlib', 'jax-cuda13-plugin', 'jax-cuda12-plugin', 'flax',
             'optax', 'orbax-checkpoint', 'chex', 'numpy', 'grain',
             'tensorflow-datasets', 'protobuf', 'ml-collections', 'scikit-learn'):
  try:
    versions[name] = md.version(name)
  except md.PackageNotFoundError:
    pass
import bvae_jax.evaluation.evaluate, bvae_jax.sweeps.sweep, bvae_jax.training.train  # The code imports.
device = jax.devices()[0]
stats = device.memory_stats() or {}
try:
  smi = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                        '--format=csv,noheader'], capture_output=True, text=True,
                       timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError):
  smi = None
print(json.dumps({'python': sys.version.split()[0], 'versions': versions,
                  'backend': jax.default_backend(), 'device_kind': device.device_kind,
                  'num_devices': jax.device_count(),
                  'bytes_limit': stats.get('bytes_limit'), 'nvidia_smi': smi}))
if jax.default_backend() != 'gpu' and sys.argv[1] != '1':
  sys.exit('JAX sees no GPU: stopping before the benchmarks spend device time.')
PY
env_rc=$?
if wanted env && ((env_rc != 0)); then
  echo "=== env failed (rc $env_rc): the suite stops here. A missing module?" \
      "Carry .whl (this script's header makes it)." | tee -a "$LOG"
  exit "$env_rc"
fi

# The procedural dSprites (737,280 images, ~1 min of one core) are drawn on
# the CPU while the benchmarks use the GPU.
if wanted train || wanted metrics || wanted beta_sweep; then
  JAX_PLATFORMS=cpu "$PYTHON" - "$DATA" "$TINY" > "$WORK/prepare.out" 2>&1 <<'PY' &
import sys
import ml_collections
from bvae_jax.datasets import registry
registry.open_dataset(ml_collections.ConfigDict({
    'dataset': 'dsprites/tiny' if sys.argv[2] == '1' else 'dsprites',
    'dataset_source': 'procedural', 'data_dir': sys.argv[1]}))
print('prepared')
PY
  PREPARE_PID=$!
fi

stage train_step_64 100 "$PYTHON" -m benchmarks.train_step \
    --batch_size=$SMALL_BATCH --seconds=$SECONDS_EACH --conv_impl=matmul,lax
stage train_step_1024 110 "$PYTHON" -m benchmarks.train_step \
    --batch_size=$LARGE_BATCH --seconds=$SECONDS_EACH --conv_impl=matmul,lax
stage sweep 200 "$PYTHON" -m benchmarks.sweep --members=$MEMBERS \
    --seconds=$SECONDS_EACH --member_layouts=vmap,map,loop

if [[ -n ${PREPARE_PID:-} ]]; then
  wait "$PREPARE_PID"
  echo "=== data preparation: rc $?, $(date -u)" | tee -a "$LOG"
  cat "$WORK/prepare.out" >> "$LOG"
fi

DATA_FLAGS=(--config.dataset_source=procedural --config.data_dir="$DATA"
            "${DATA_OVERRIDES[@]}")
wanted train && rm -rf "$RUN"  # A rerun trains afresh instead of resuming.
stage train 200 "$PYTHON" -m bvae_jax.main --config=configs/capacity.py \
    --workdir="$RUN" "${DATA_FLAGS[@]}" --config.data_on_device=True \
    --config.num_train_steps="$TRAIN_STEPS" --config.log_every_steps=$LOG_EVERY \
    --config.eval_every_steps=0
cp "$(ls "$RUN"/figures/traversal_*.png 2>/dev/null | tail -1)" \
    "$OUT/traversal.png" 2>/dev/null

stage metrics 300 "$PYTHON" -m benchmarks.metrics --workdir="$RUN" \
    --config=configs/capacity.py "${DATA_FLAGS[@]}" "${EVAL_OVERRIDES[@]}"

# Resumes a sweep an earlier call left unfinished (checkpoints every 2,500
# steps); the study's files are rewritten from the sweep's results each time.
stage beta_sweep 520 "$PYTHON" -m bvae_jax.main \
    --config=configs/sweep_beta.py:study --workdir="$BETA_RUN" "${DATA_FLAGS[@]}" \
    "${EVAL_OVERRIDES[@]}" "${BETA_SWEEP_OVERRIDES[@]}"
if wanted beta_sweep; then
  mkdir -p "$OUT/beta_sweep"
  cp -r "$BETA_RUN"/sweep_results.* "$BETA_RUN"/udr.json \
      "$BETA_RUN"/udr_vs_metrics.png "$BETA_RUN"/study "$OUT/beta_sweep/" \
      2> /dev/null
fi

echo "=== gpu_suite done in $(($(date +%s) - START))s; results in $RESULTS" | tee -a "$LOG"
