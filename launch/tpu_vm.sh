#!/usr/bin/env bash
# Runs bvae_jax on every worker of a Cloud TPU VM or TPU pod slice.
#
#   launch/tpu_vm.sh setup TPU_NAME ZONE           copy this checkout to every worker, pip install
#   launch/tpu_vm.sh TPU_NAME ZONE [main flags...] run bvae_jax.main on every worker
#
#   launch/tpu_vm.sh setup my-tpu us-central2-b
#   launch/tpu_vm.sh my-tpu us-central2-b --config=configs/capacity.py --workdir=/mnt/shared/capacity
#
# One process per worker (host); jax.distributed.initialize() finds the other
# workers by itself on Cloud TPU (--distributed=on). Paths in the flags are on
# the workers, relative to REPO_DIR. On a slice with more than one worker the
# workdir must be a directory that every worker mounts at the same path.
# See launch/README.md.
#
# Environment:
#   PROJECT   Google Cloud project (passed as --project; default: gcloud's)
#   REPO_DIR  checkout on the workers (default: ~/bvae_jax; quote a ~ so that
#             it is the workers' home: REPO_DIR='~/src/bvae_jax')
#   PYTHON    interpreter on the workers (default: python3)
#   DETACH=1  start the run in the background on every worker (nohup, log in
#             the worker's home directory) and return, instead of streaming
#   DRY_RUN=1 print the gcloud commands instead of running them
#
# Only documented gcloud flags are used: tpu-vm ssh --zone --worker --command,
# tpu-vm scp --zone --worker, and the gcloud-wide --project.

set -euo pipefail

readonly PROG=${0##*/}

usage() {
  cat <<EOF
Usage: $PROG setup TPU_NAME ZONE
       $PROG TPU_NAME ZONE [bvae_jax.main flags...]

setup: copies this checkout's committed HEAD (git archive) to REPO_DIR on every
       worker and installs requirements.txt plus jax[tpu] there.
run:   starts 'python3 -m bvae_jax.main --distributed=on FLAGS' on every worker.

Example:
  $PROG setup my-tpu us-central2-b
  $PROG my-tpu us-central2-b --config=configs/capacity.py --workdir=/mnt/shared/capacity

Environment: PROJECT, REPO_DIR (default ~/bvae_jax), PYTHON (default python3),
DETACH=1 (run in the background on the workers), DRY_RUN=1 (print only).
EOF
}

usage_error() {
  echo "$PROG: $1" >&2
  echo >&2
  usage >&2
  exit 2
}

# Prints the gcloud command (shell-quoted), then runs it unless DRY_RUN=1.
run_gcloud() {
  printf '+ gcloud' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
  if [[ ${DRY_RUN:-0} != 1 ]]; then
    gcloud "$@"
  fi
}

# REPO_DIR as a word for the workers' shell: a leading ~ becomes "$HOME" there
# (quoting it with %q would stop the remote shell from expanding it).
# shellcheck disable=SC2016,SC2088  # The ~ and $HOME are for the remote shell.
remote_repo_dir() {
  local dir=${REPO_DIR:-'~/bvae_jax'}
  case $dir in
    '~') printf '"$HOME"' ;;
    '~/'*) printf '"$HOME"/%q' "${dir#'~/'}" ;;
    *) printf '%q' "$dir" ;;
  esac
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  usage
  exit 0
fi

mode=run
if [[ ${1:-} == setup ]]; then
  mode=setup
  shift
fi
(( $# >= 2 )) || usage_error "expected TPU_NAME and ZONE."
tpu_name=$1
zone=$2
shift 2
[[ -n $tpu_name && -n $zone ]] || usage_error "TPU_NAME and ZONE must not be empty."

gcloud_flags=(--zone="$zone")
if [[ -n ${PROJECT:-} ]]; then
  gcloud_flags+=(--project="$PROJECT")
fi
if [[ ${DRY_RUN:-0} != 1 ]] && ! command -v gcloud >/dev/null 2>&1; then
  echo "$PROG: gcloud not found; install the Google Cloud CLI (or set DRY_RUN=1)." >&2
  exit 2
fi

repo_dir=$(remote_repo_dir)
python_q=$(printf '%q' "${PYTHON:-python3}")

if [[ $mode == setup ]]; then
  (( $# == 0 )) || usage_error "setup takes no flags after ZONE."
  repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
  git -C "$repo_root" rev-parse --git-dir >/dev/null 2>&1 ||
    usage_error "$repo_root is not a git checkout; setup ships its committed HEAD."
  head=$(git -C "$repo_root" rev-parse --short HEAD)
  if [[ -n $(git -C "$repo_root" status --porcelain --untracked-files=no) ]]; then
    echo "$PROG: warning: uncommitted changes are not copied; shipping HEAD ($head)." >&2
  fi
  tmp_dir=$(mktemp -d "${TMPDIR:-/tmp}/bvae_jax_tpu.XXXXXX")
  trap 'rm -rf -- "$tmp_dir"' EXIT
  archive=$tmp_dir/bvae_jax_src.tar.gz
  git -C "$repo_root" archive --format=tar.gz -o "$archive" HEAD
  echo "$PROG: copying bvae_jax $head to $tpu_name (all workers) and installing." >&2
  # Lands in the home directory of every worker ("NAME:" with no path).
  run_gcloud compute tpus tpu-vm scp "$archive" "$tpu_name:" \
    --worker=all "${gcloud_flags[@]}"
  remote="mkdir -p $repo_dir"
  remote+=" && tar -xzf ~/bvae_jax_src.tar.gz -C $repo_dir"
  remote+=" && rm -f ~/bvae_jax_src.tar.gz"
  remote+=" && cd $repo_dir"
  remote+=" && $python_q -m pip install -r requirements.txt 'jax[tpu]'"
  run_gcloud compute tpus tpu-vm ssh "$tpu_name" \
    --worker=all "${gcloud_flags[@]}" --command="$remote"
  exit 0
fi

(( $# > 0 )) || usage_error "no bvae_jax.main flags given (at least --config and --workdir)."
for arg in "$@"; do
  case $arg in
    --distributed | --distributed=*)
      usage_error "'$arg' is set by $PROG (--distributed=on)." ;;
    --workdir=gs://*)
      echo "$PROG: warning: bvae_jax writes its workdir with plain file I/O;" \
        "mount the bucket (e.g. Cloud Storage FUSE) and pass the mount path." >&2 ;;
  esac
done
echo "$PROG: note: with more than one worker, --workdir must be shared by all" \
  "workers at the same path." >&2

main_cmd="$python_q -m bvae_jax.main --distributed=on$(printf ' %q' "$@")"
if [[ ${DETACH:-0} == 1 ]]; then
  log_name=bvae_jax_$(date +%Y%m%d_%H%M%S).log
  remote="cd $repo_dir && nohup $main_cmd > ~/$log_name 2>&1 < /dev/null &"
  run_gcloud compute tpus tpu-vm ssh "$tpu_name" \
    --worker=all "${gcloud_flags[@]}" --command="$remote"
  echo "$PROG: started in the background; each worker logs to ~/$log_name. Follow worker 0 with:" >&2
  printf '  gcloud compute tpus tpu-vm ssh %q' "$tpu_name" >&2
  printf ' %q' --worker=0 "${gcloud_flags[@]}" --command="tail -f ~/$log_name" >&2
  printf '\n' >&2
else
  run_gcloud compute tpus tpu-vm ssh "$tpu_name" \
    --worker=all "${gcloud_flags[@]}" --command="cd $repo_dir && exec $main_cmd"
fi
