#!/usr/bin/env bash
# Runs bvae_jax.main as NUM_PROCESSES cooperating JAX processes on this machine.
#
#   launch/local.sh NUM_PROCESSES DEVICES_PER_PROCESS [main flags...]
#   launch/local.sh 2 1 --config=configs/capacity.py:quick --workdir=/tmp/bvae_2proc
#
# Each process gets DEVICES_PER_PROCESS JAX CPU devices (--cpu_devices) and joins
# a coordinator on 127.0.0.1:PORT, so the run has NUM_PROCESSES x
# DEVICES_PER_PROCESS devices in all; config.batch_size must divide by that.
# This exercises the multi-host code path (per-process data slices, process-0
# logging, cooperative Orbax checkpoints) without a cluster. See launch/README.md.
#
# Environment:
#   PYTHON   interpreter to run (default: python3)
#   PORT     coordinator port (default: a free port picked by binding port 0)
#   LOG_DIR  per-process logs process_<i>.log (default: /tmp/bvae_jax_local_$PORT)
#
# Process 0's output is also shown here. If any process exits non-zero, the
# others are stopped, that process's log tail is printed, and this script exits
# with its status; it exits 0 only if every process succeeded.

set -euo pipefail

readonly PROG=${0##*/}
# Seconds between SIGTERM and SIGKILL when stopping the other processes (JAX's
# preemption service may catch SIGTERM, so a plain TERM is not always enough).
readonly KILL_GRACE_SECONDS=5
readonly XLA_DEVICE_COUNT_FLAG=--xla_force_host_platform_device_count
# bvae_jax.main's exit status after a preemption notice: a checkpoint of the
# step every process agreed on is saved (loop.PREEMPTED_EXIT_STATUS).
readonly PREEMPTED_STATUS=75

usage() {
  cat <<EOF
Usage: $PROG NUM_PROCESSES DEVICES_PER_PROCESS [bvae_jax.main flags...]

Runs NUM_PROCESSES copies of 'python -m bvae_jax.main' on this machine as one
distributed JAX job, each with DEVICES_PER_PROCESS CPU devices (0 = main's
automatic choice). The global batch must divide by the total device count.

Example:
  $PROG 2 1 --config=configs/capacity.py:quick --workdir=/tmp/bvae_2proc

Environment: PYTHON (default python3), PORT (default: a free port),
LOG_DIR (default /tmp/bvae_jax_local_\$PORT).
EOF
}

usage_error() {
  echo "$PROG: $1" >&2
  echo >&2
  usage >&2
  exit 2
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  usage
  exit 0
fi
(( $# >= 2 )) || usage_error "expected NUM_PROCESSES and DEVICES_PER_PROCESS."
num_processes=$1
devices_per_process=$2
shift 2
[[ $num_processes =~ ^[1-9][0-9]*$ ]] ||
  usage_error "NUM_PROCESSES must be a positive integer, got '$num_processes'."
[[ $devices_per_process =~ ^[0-9]+$ ]] ||
  usage_error "DEVICES_PER_PROCESS must be an integer >= 0, got '$devices_per_process'."
for arg in "$@"; do
  case $arg in
    --distributed | --distributed=* | --coordinator_address | --coordinator_address=* | \
      --num_processes | --num_processes=* | --process_id | --process_id=* | \
      --cpu_devices | --cpu_devices=*)
      usage_error "'$arg' is set by $PROG itself; leave it out." ;;
  esac
done

python=${PYTHON:-python3}
command -v -- "$python" >/dev/null 2>&1 ||
  usage_error "Python interpreter '$python' not found (set PYTHON)."

# Import bvae_jax from this checkout without changing the working directory:
# paths in the flags (e.g. a relative --workdir) stay relative to the caller.
repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if [[ -n ${PORT:-} ]]; then
  if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || (( 10#$PORT < 1 || 10#$PORT > 65535 )); then
    usage_error "PORT must be a TCP port number (1-65535), got '$PORT'."
  fi
  port=$(( 10#$PORT ))
  if ! "$python" - "$port" <<'PY' 2>/dev/null; then
import socket, sys
with socket.socket() as s:
    s.bind(('127.0.0.1', int(sys.argv[1])))
PY
    echo "$PROG: port $port on 127.0.0.1 is in use; choose another PORT or unset it." >&2
    exit 1
  fi
else
  port=$("$python" - <<'PY'
import socket
with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    print(s.getsockname()[1])
PY
)
fi

log_dir=${LOG_DIR:-/tmp/bvae_jax_local_$port}
mkdir -p -- "$log_dir"

# --cpu_devices must be what sets each process's device count. main ignores it
# when XLA_FLAGS already forces a host device count (devices.py gives that
# precedence), and such a setting is easily inherited, e.g. from the test
# suite's conftest.py (which forces 2). Drop it from the children's XLA_FLAGS so
# DEVICES_PER_PROCESS always holds; other XLA flags pass through unchanged.
if [[ -n ${XLA_FLAGS:-} ]]; then
  read -r -a xla_flags <<<"$XLA_FLAGS"
  kept_flags=()
  for flag in "${xla_flags[@]}"; do
    case $flag in
      "$XLA_DEVICE_COUNT_FLAG" | "$XLA_DEVICE_COUNT_FLAG"=*)
        echo "$PROG: removing '$flag' from XLA_FLAGS; DEVICES_PER_PROCESS sets the device count." >&2 ;;
      *) kept_flags+=("$flag") ;;
    esac
  done
  if (( ${#kept_flags[@]} )); then
    export XLA_FLAGS="${kept_flags[*]}"
  else
    unset XLA_FLAGS
  fi
fi
# The coordinator (process 0) only needs to be reachable from this machine.
export JAX_COORDINATOR_BIND_ADDRESS=${JAX_COORDINATOR_BIND_ADDRESS:-127.0.0.1:$port}

pids=()
tee_pid=
fifo_dir=

stop_processes() {
  local pid alive=()
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      alive+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  (( ${#alive[@]} )) || return 0
  local waited=0
  while (( waited < KILL_GRACE_SECONDS * 10 )); do
    local still=()
    for pid in "${alive[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then
        still+=("$pid")
      fi
    done
    (( ${#still[@]} )) || return 0
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  for pid in "${alive[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# Reaps stopped processes here, which also keeps bash's "Killed" notices quiet.
reap_processes() {
  local pid
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  stop_processes
  reap_processes
  if [[ -n $tee_pid ]]; then
    if (( ${#pids[@]} )); then
      wait "$tee_pid" 2>/dev/null || true  # Let tee print process 0's last lines.
    else
      kill "$tee_pid" 2>/dev/null || true  # Process 0 never opened the FIFO.
    fi
  fi
  if [[ -n $fifo_dir ]]; then
    rm -rf -- "$fifo_dir"
  fi
}
trap cleanup EXIT
trap 'echo "$PROG: interrupted; stopping all processes." >&2; exit 130' INT
# SIGTERM is a preemption notice (a scheduler's, or kill): pass it on and let
# the processes agree on a step, save it and exit with PREEMPTED_STATUS.
pass_on_term() {
  echo "$PROG: terminated; passing SIGTERM on to every process (they save a" \
    "checkpoint of one step and exit $PREEMPTED_STATUS)." >&2
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
}
trap pass_on_term TERM
trap 'echo "$PROG: hangup; stopping all processes." >&2; exit 129' HUP

echo "$PROG: $num_processes processes x $devices_per_process CPU devices," \
  "coordinator 127.0.0.1:$port, logs in $log_dir/" >&2

# Process 0 writes into a FIFO read by tee (log file + this terminal), so the
# process's own PID is what we wait on and stop, and tee can be waited for.
fifo_dir=$(mktemp -d "${TMPDIR:-/tmp}/bvae_jax_local.XXXXXX")
mkfifo -- "$fifo_dir/process_0"
tee -- "$log_dir/process_0.log" <"$fifo_dir/process_0" &
tee_pid=$!

for (( i = 0; i < num_processes; i++ )); do
  cmd=("$python" -m bvae_jax.main
       --distributed=on
       --coordinator_address="127.0.0.1:$port"
       --num_processes="$num_processes"
       --process_id="$i"
       --cpu_devices="$devices_per_process"
       "$@")
  if (( i == 0 )); then
    "${cmd[@]}" </dev/null >"$fifo_dir/process_0" 2>&1 &
  else
    "${cmd[@]}" </dev/null >"$log_dir/process_$i.log" 2>&1 &
  fi
  pids+=("$!")
done

# Poll until every process has finished or one has failed. (Bash keeps the exit
# status of a finished background process, so 'wait PID' still returns it.) A
# preempted process is not a failed one: the others reach the same step, save
# and exit with the same status, so they are waited for, not stopped.
running=("${!pids[@]}")
failed_index=
failed_status=0
preempted=0
while (( ${#running[@]} )) && [[ -z $failed_index ]]; do
  still_running=()
  for i in "${running[@]}"; do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      still_running+=("$i")
      continue
    fi
    status=0
    wait "${pids[i]}" || status=$?
    if (( status == PREEMPTED_STATUS )); then
      preempted=1
    elif (( status != 0 )) && [[ -z $failed_index ]]; then
      failed_index=$i
      failed_status=$status
    fi
  done
  running=("${still_running[@]}")
  if (( ${#running[@]} )) && [[ -z $failed_index ]]; then
    sleep 0.2
  fi
done

if [[ -n $failed_index ]]; then
  log_file="$log_dir/process_$failed_index.log"
  echo >&2
  echo "$PROG: process $failed_index of $num_processes exited with status $failed_status;" \
    "stopping the others." >&2
  stop_processes
  reap_processes
  wait "$tee_pid" 2>/dev/null || true
  tee_pid=
  echo "$PROG: last 30 lines of $log_file:" >&2
  tail -n 30 -- "$log_file" >&2 || true
  echo "$PROG: all logs: $log_dir/" >&2
  exit "$failed_status"
fi

wait "$tee_pid" 2>/dev/null || true
tee_pid=
if (( preempted )); then
  echo "$PROG: preempted: the processes saved a checkpoint of the same step;" \
    "the same command resumes from it. Logs in $log_dir/" >&2
  exit "$PREEMPTED_STATUS"
fi
echo "$PROG: all $num_processes processes finished successfully; logs in $log_dir/" >&2
