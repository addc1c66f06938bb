# shellcheck shell=bash
# Variables defined here are read by the scripts that source this file.
# shellcheck disable=SC2034
# Shared helpers for the Cloud TPU operation scripts in this folder. Sourced, never run directly.
#
# Conventions every script follows:
#   * `set -euo pipefail`, flags as `--flag=value` or `--flag value`, `--help`, `--dry-run`.
#   * Every gcloud/gsutil call goes through `run` (or `gcloud_cmd`), so `--dry-run` prints it as a
#     copy-pasteable line starting with "+ " instead of running it.
#   * Every gcloud call gets `--quiet` (no interactive prompt, ever) and `--project=` when given.
#
# TPU facts the scripts rely on (checked 2026-11 against the public docs):
#   * Runtime ("software") version names for TensorFlow follow tpu-vm-tf-x.y.z[-pod][-pjrt], with
#     `-pod` for multi-host slices (https://cloud.google.com/tpu/docs/runtimes, "TensorFlow").
#     The TensorFlow version comes from ONE place, the `tensorflow-cpu==X.Y.Z` pin of
#     requirements.txt (tf_version below): the default image is tpu-vm-tf-X.Y.Z[-pod]-pjrt, a
#     --version of another TF minor is refused (check_runtime_version), and setup_workers.sh
#     installs tensorflow-tpu==X.Y.Z. A base image without TF (tpu-ubuntu2204-base, ...) is
#     refused too: on a pod the hosts must run the TF TPU runtime that the single TF client on
#     worker 0 drives over gRPC, and only the tpu-vm-tf-* images ship it (pip-installing
#     tensorflow-tpu on the hosts does not start that server).
#   * TensorFlow drives a multi-host slice from ONE client process (worker 0) that connects to the
#     TPU runtime of every host over gRPC (port 8470), with TPU_LOAD_LIBRARY=0 so the client does not
#     grab the local chips; single-host slices run with --tpu=local. This is what Google's own TF
#     TPU CI does (GoogleCloudPlatform/ml-auto-solutions: `all_workers=not is_pod`,
#     `export TPU_LOAD_LIBRARY=0` for pods). Starting the trainer on every worker of a pod would
#     give N independent trainings writing to one workdir.
#   * gcloud synopses: https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/create,
#     .../tpu-vm/ssh, .../tpu-vm/scp, .../queued-resources/create, .../queued-resources/delete.

# Wheel index for tensorflow-tpu and its libtpu (the TF-specific index; the libtpu-releases
# index serves JAX). Used as in tensorflow/recommenders and Google's TF TPU CI.
TRM_LIBTPU_INDEX="https://storage.googleapis.com/libtpu-tf-releases/index.html"
# Where the repository lives on every worker and where run logs go. `~` is kept literal on
# purpose: these strings go into remote commands and the worker's shell expands them.
# shellcheck disable=SC2088
TRM_REMOTE_DIR="~/trm-tf"
# shellcheck disable=SC2088
TRM_REMOTE_LOGS="~/trm_logs"
# TPU runtime gRPC port on every host of a pod slice (tensorflow/python/tpu/client/client.py).
TRM_TPU_GRPC_PORT=8470
# Profiler service of the TPU runtime on every TPU VM worker: on a pod the TPU lanes of a trace
# come from these services, not from the client process on worker 0.
TRM_TPU_PROFILER_PORT=8466

DRY_RUN=0
PROJECT="${TRM_GCP_PROJECT:-}"
NAME="${TRM_TPU_NAME:-}"
ZONE="${TRM_TPU_ZONE:-}"
TPU_TYPE=""
TPU_ADDRESS=""
MULTI_HOST=0
# The TFDS data_dir of the launched runs (launch.py --config.data.data_dir=...): `--data_dir` or this.
DATA_DIR="${TRM_DATA_DIR:-}"
SCRIPT_NAME="$(basename "$0")"
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPTS_DIR}/.." && pwd)"

log() { echo "[${SCRIPT_NAME}] $*" >&2; }

die() {
  echo "error: $*" >&2
  exit 1
}

usage_error() {
  echo "error: $*" >&2
  echo "Run '${SCRIPT_NAME} --help' for usage." >&2
  exit 2
}

# Reads a flag's value from "$@" (either --flag=value or --flag value).
# Sets OPTVAL to the value and OPTSHIFT to the number of arguments consumed.
optval() {
  if [[ $1 == *=* ]]; then
    OPTVAL="${1#*=}"
    OPTSHIFT=1
  elif [[ $# -ge 2 ]]; then
    OPTVAL="$2"
    OPTSHIFT=2
  else
    usage_error "$1 needs a value"
  fi
}

# Handles the flags most scripts share (--name, --zone, --project, --type, --tpu_address,
# --dry-run). Returns 1 when $1 is none of them; otherwise sets OPTSHIFT.
common_flag() {
  case "$1" in
    --name | --name=*) optval "$@" && NAME="${OPTVAL}" ;;
    --zone | --zone=*) optval "$@" && ZONE="${OPTVAL}" ;;
    --project | --project=*) optval "$@" && PROJECT="${OPTVAL}" ;;
    --type | --type=*) optval "$@" && TPU_TYPE="${OPTVAL}" ;;
    --tpu_address | --tpu_address=*) optval "$@" && TPU_ADDRESS="${OPTVAL}" ;;
    --dry-run)
      DRY_RUN=1
      OPTSHIFT=1
      ;;
    *) return 1 ;;
  esac
}

# Fails with a usage error naming every flag whose variable is empty. Args: pairs "flag" "value".
require_flags() {
  local missing=()
  while [[ $# -ge 2 ]]; do
    [[ -n $2 ]] || missing+=("$1")
    shift 2
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    usage_error "missing required flag(s): ${missing[*]}"
  fi
}

# Prints one argument quoted for a POSIX shell (unquoted when it is made of safe characters).
quote_arg() {
  local s="$1"
  if [[ -n $s && $s =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

# Joins its arguments into one shell-quoted command line.
join_cmd() {
  local out="" a
  for a in "$@"; do
    out+="${out:+ }$(quote_arg "$a")"
  done
  printf '%s' "$out"
}

print_cmd() { echo "+ $(join_cmd "$@")"; }

# Runs a command, or prints it in dry-run mode. Real runs echo the command to stderr first so the
# operator's terminal shows exactly what was executed.
run() {
  if [[ ${DRY_RUN} == 1 ]]; then
    print_cmd "$@"
    return 0
  fi
  print_cmd "$@" >&2
  "$@"
}

# Same as run, for a shell pipeline given as one string (local only, e.g. tar of the checkout).
run_sh() {
  if [[ ${DRY_RUN} == 1 ]]; then
    echo "+ $1"
    return 0
  fi
  echo "+ $1" >&2
  bash -c "$1"
}

# Builds the gcloud argument list: adds --project and --quiet before any "--" (arguments after
# "--" belong to ssh, e.g. the -L of a tunnel). Result in GCLOUD_ARGS.
build_gcloud_args() {
  local before=() after=() seen_dashdash=0 a
  for a in "$@"; do
    if [[ ${seen_dashdash} == 0 && $a == "--" ]]; then
      seen_dashdash=1
      continue
    fi
    if [[ ${seen_dashdash} == 1 ]]; then after+=("$a"); else before+=("$a"); fi
  done
  [[ -n ${PROJECT} ]] && before+=("--project=${PROJECT}")
  before+=("--quiet")
  GCLOUD_ARGS=(gcloud "${before[@]}")
  if [[ ${seen_dashdash} == 1 ]]; then GCLOUD_ARGS+=(-- "${after[@]}"); fi
}

gcloud_cmd() {
  build_gcloud_args "$@"
  run "${GCLOUD_ARGS[@]}"
}

# Runs a read-only gcloud query and prints its stdout. In dry-run the command is printed and the
# placeholder $1 is returned instead.
gcloud_query() {
  local placeholder="$1"
  shift
  build_gcloud_args "$@"
  if [[ ${DRY_RUN} == 1 ]]; then
    print_cmd "${GCLOUD_ARGS[@]}" >&2
    printf '%s' "${placeholder}"
    return 0
  fi
  "${GCLOUD_ARGS[@]}"
}

# Fails fast when gcloud is missing or has no active account (skipped in dry-run).
require_gcloud() {
  [[ ${DRY_RUN} == 1 ]] && return 0
  command -v gcloud >/dev/null 2>&1 ||
    die "gcloud not found on PATH. Install the Google Cloud SDK (https://cloud.google.com/sdk/docs/install), or use --dry-run to only print the commands."
  local account
  account="$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null || true)"
  [[ -n ${account} ]] ||
    die "gcloud is not authenticated. Run 'gcloud auth login' (and 'gcloud auth application-default login' so Python can read gs://)."
}

# Number in an accelerator type (v4-32 -> 32). For v2/v3/v4/v5p it counts TensorCores, for
# v5litepod/v6e chips; either way a host holds 8 of them, so "> 8" means multi-host.
accelerator_size() {
  local n="${1##*-}"
  [[ $n =~ ^[0-9]+$ ]] || die "cannot read the size of accelerator type '$1' (expected e.g. v4-32)"
  printf '%s' "$n"
}

is_multi_host() { [[ $(accelerator_size "$1") -gt 8 ]]; }

# Prints the TensorFlow version X.Y.Z pinned by the `tensorflow-cpu==X.Y.Z` line of the
# repository's requirements.txt. That pin is the one source of truth for the TF version on the
# TPU VMs: CPU development and TPU runs must use the same TF minor version (tensorflow-tpu is the
# TPU build of the same release). Fails when the file or the pin is missing.
tf_version() {
  local req="${REPO_ROOT}/requirements.txt" line
  [[ -f ${req} ]] || die "cannot read the TensorFlow pin: ${req} is missing"
  while IFS= read -r line || [[ -n ${line} ]]; do
    if [[ ${line} =~ ^tensorflow-cpu==([0-9]+\.[0-9]+\.[0-9]+)[[:space:]]*(#.*)?$ ]]; then
      printf '%s' "${BASH_REMATCH[1]}"
      return 0
    fi
  done <"${req}"
  die "${req} has no 'tensorflow-cpu==X.Y.Z' line to take the TensorFlow version from"
}

# The pip requirement the TPU VM workers install in place of tensorflow-cpu.
tf_tpu_requirement() {
  local v
  v="$(tf_version)" || exit 1
  printf 'tensorflow-tpu==%s' "${v}"
}

# Default TPU runtime image for accelerator type $1 and TF version $2.
default_runtime_version() {
  if is_multi_host "$1"; then
    printf 'tpu-vm-tf-%s-pod-pjrt' "$2"
  else
    printf 'tpu-vm-tf-%s-pjrt' "$2"
  fi
}

# Refuses (one line, exit 1) a TPU runtime image $2 that cannot run this project's TensorFlow
# $3 on accelerator type $1:
#   * not a tpu-vm-tf-* image (e.g. tpu-ubuntu2204-base): no TF TPU runtime on the hosts, so a
#     pod cannot serve the single TF client, and nothing guarantees the TF version;
#   * another TF minor version than requirements.txt pins (the client's TF and the hosts'
#     runtime must match; the workers install tensorflow-tpu==$3);
#   * a multi-host type without the -pod- variant, or one host with it.
check_runtime_version() {
  local type="$1" version="$2" tf="$3"
  local want
  want="$(default_runtime_version "${type}" "${tf}")"
  if [[ ! ${version} =~ ^tpu-vm-tf-([0-9]+\.[0-9]+)\.[0-9]+(-pod)?(-pjrt)?$ ]]; then
    die "--version=${version} is not a TensorFlow TPU runtime image (it has no TF TPU runtime for the trainer; a pod cannot run TF's single-client program on it); use --version=${want}"
  fi
  if [[ ${BASH_REMATCH[1]} != "${tf%.*}" ]]; then
    die "--version=${version} is TensorFlow ${BASH_REMATCH[1]}, but requirements.txt pins TensorFlow ${tf} (the workers install tensorflow-tpu==${tf}); use --version=${want}"
  fi
  if is_multi_host "${type}" && [[ -z ${BASH_REMATCH[2]} ]]; then
    die "--type=${type} is a multi-host slice and needs the -pod- runtime variant, got --version=${version}; use --version=${want}"
  fi
  if ! is_multi_host "${type}" && [[ -n ${BASH_REMATCH[2]} ]]; then
    die "--type=${type} is a single host and needs the runtime without -pod-, got --version=${version}; use --version=${want}"
  fi
}

# Refuses (one line, exit 1) runtime image $2 when the zone's list $4 (one version per line or
# ';'-separated, from 'gcloud compute tpus tpu-vm versions list') lacks it, naming the zone's
# tpu-vm-tf-* images and what to change: a --version of the same TF minor and host variant
# when the zone has one, else the requirements.txt pin. $1: accelerator type, $3: the pinned TF.
check_runtime_offered() {
  local type="$1" version="$2" tf="$3" v tf_images=() usable=()
  for v in ${4//;/ }; do
    v="${v##*/}" # a full resource name ends in the version
    [[ ${v} == "${version}" ]] && return 0
    [[ ${v} == tpu-vm-tf-* ]] || continue
    tf_images+=("${v}")
    (check_runtime_version "${type}" "${v}" "${tf}" 2>/dev/null) && usable+=("${v}")
  done
  local listed="none"
  [[ ${#tf_images[@]} -eq 0 ]] || listed="$(printf '%s\n' "${tf_images[@]}" | sort -V | paste -sd' ')"
  if [[ ${#usable[@]} -gt 0 ]]; then
    die "${ZONE} does not offer the TPU runtime ${version}; its TensorFlow images: ${listed}; use --version=$(printf '%s\n' "${usable[@]}" | sort -V | tail -n 1) (same TensorFlow ${tf%.*})"
  fi
  die "${ZONE} does not offer the TPU runtime ${version}; its TensorFlow images: ${listed}; none is TensorFlow ${tf%.*} for --type=${type}: move the tensorflow-cpu==${tf} pin of requirements.txt to a listed version that has a tensorflow-tpu wheel (the default --version follows it), or use another zone"
}

# "90", "90s", "30m", "72h", "2d" -> seconds (bounds for the scripts' wait loops).
duration_seconds() {
  [[ $1 =~ ^([0-9]+)([smhd]?)$ ]] || usage_error "bad duration '$1' (use e.g. 90s, 30m, 72h, 2d)"
  local n="${BASH_REMATCH[1]}"
  case "${BASH_REMATCH[2]}" in
    m) n=$((n * 60)) ;;
    h) n=$((n * 3600)) ;;
    d) n=$((n * 86400)) ;;
  esac
  printf '%s' "${n}"
}

# Sets TPU_ADDRESS (the trainer's --tpu value) and MULTI_HOST (0/1) for TPU $NAME in $ZONE.
# Inputs (globals, may be empty): TPU_ADDRESS (explicit override), TPU_TYPE (skips a describe).
resolve_tpu_address() {
  if [[ -n ${TPU_ADDRESS:-} ]]; then
    if [[ ${TPU_ADDRESS} == local ]]; then MULTI_HOST=0; else MULTI_HOST=1; fi
    return 0
  fi
  local type="${TPU_TYPE:-}"
  if [[ -z ${type} ]]; then
    type="$(gcloud_query "v4-32" compute tpus tpu-vm describe "${NAME}" --zone="${ZONE}" \
      --format='value(acceleratorType)')"
  fi
  if is_multi_host "${type}"; then
    MULTI_HOST=1
    local ips
    ips="$(gcloud_query "WORKER_IPS" compute tpus tpu-vm describe "${NAME}" --zone="${ZONE}" \
      --format='value(networkEndpoints[].ipAddress)')"
    TPU_ADDRESS="$(endpoints_to_grpc "${ips}")"
  else
    MULTI_HOST=0
    TPU_ADDRESS="local"
  fi
}

# "10.0.0.2;10.0.0.3" (gcloud list output) -> "grpc://10.0.0.2:8470,grpc://10.0.0.3:8470".
# $2: the port (default: the TPU runtime's gRPC port).
endpoints_to_grpc() {
  local raw="${1//;/ }" out="" ip port="${2:-${TRM_TPU_GRPC_PORT}}"
  raw="${raw//,/ }"
  for ip in ${raw}; do
    out+="${out:+,}grpc://${ip}:${port}"
  done
  [[ -n ${out} ]] || die "TPU ${NAME} reported no network endpoints (is it READY?)"
  printf '%s' "${out}"
}

# Environment for the trainer process on the worker.
trainer_env_args() {
  if [[ ${MULTI_HOST} == 1 ]]; then
    # The client on worker 0 must not load libtpu: the hosts' TPU runtimes own the chips.
    printf '%s\n' "--env=TPU_LOAD_LIBRARY=0"
  else
    printf '%s\n' "--pjrt"
  fi
}

is_gcs() { [[ $1 == gs://* ]]; }

# Whether the slice is known, without asking gcloud, to be one host: --tpu_address=local or a
# --type of at most 8 cores.
known_single_host() {
  [[ ${TPU_ADDRESS:-} == local ]] && return 0
  [[ -z ${TPU_ADDRESS:-} && -n ${TPU_TYPE:-} ]] && ! is_multi_host "${TPU_TYPE}"
}

# Refuses (one line, exit 1, before any gcloud call) a launch whose run would stop at once in
# launch.py: the hosts of a multi-host slice read the data and write the workdir themselves, so
# both must be gs://. The config's own default data_dir (~/tensorflow_datasets) is a path on
# worker 0, so the data dir must be given. Only a slice known to be one host (--type=v4-8 or
# --tpu_address=local) may use local paths of its worker. Args: the workdir flag and its value.
require_pod_paths() {
  local flag="$1" workdir="$2" one_host=""
  known_single_host && return 0
  one_host="(a one-host slice may use its worker's paths: add --type=v4-8 or --tpu_address=local)"
  if [[ -z ${DATA_DIR} ]]; then
    die "no --data_dir: the hosts of a multi-host slice cannot read the config's default data_dir (~/tensorflow_datasets on worker 0); pass --data_dir=gs://BUCKET/tfds or set TRM_DATA_DIR ${one_host}"
  fi
  is_gcs "${DATA_DIR}" ||
    die "--data_dir=${DATA_DIR} is not gs://: the hosts of a multi-host slice read the data themselves; use --data_dir=gs://BUCKET/tfds ${one_host}"
  is_gcs "${workdir}" ||
    die "${flag}=${workdir} is not gs://: the hosts of a multi-host slice write checkpoints and summaries themselves; use a gs://BUCKET/runs/... path ${one_host}"
}

# Takes the data dir out of launch.py flags "$@" (a --config.data.data_dir=X among them) into
# DATA_DIR, refusing one that disagrees with --data_dir / TRM_DATA_DIR. Prints nothing.
data_dir_from_extra() {
  local a v
  for a in "$@"; do
    [[ $a == --config.data.data_dir=* ]] || continue
    v="${a#*=}"
    if [[ -n ${DATA_DIR} && ${DATA_DIR} != "${v}" ]]; then
      usage_error "--data_dir=${DATA_DIR} and ${a} disagree; give the data dir once"
    fi
    DATA_DIR="${v}"
  done
}

# Prints the "status" field of WORKDIR/run_summary.json, or nothing when absent/unreadable.
# Local paths are read directly (also in dry-run: it is a read of this machine's disk); gs://
# paths through gsutil (printed, not run, in dry-run).
read_run_status() {
  local workdir="$1" summary json=""
  summary="${workdir%/}/run_summary.json"
  if is_gcs "${summary}"; then
    if [[ ${DRY_RUN} == 1 ]]; then
      print_cmd gsutil -q cat "${summary}" >&2
      return 0
    fi
    json="$(gsutil -q cat "${summary}" 2>/dev/null || true)"
  elif [[ -f ${summary} ]]; then
    json="$(cat "${summary}")"
  fi
  [[ -n ${json} ]] || return 0
  if command -v python3 >/dev/null 2>&1; then
    printf '%s' "${json}" | python3 -c \
      'import json,sys
try:
    print(json.load(sys.stdin).get("status", ""))
except Exception:
    pass'
  else
    printf '%s' "${json}" | sed -n 's/.*"status"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n1
  fi
}

# Name of a run from a config path: configs/e1_model.py:arg=1 -> e1_model_arg_1.
config_stem() {
  local c="${1##*/}"
  c="${c/.py/}"
  printf '%s' "${c//[^A-Za-z0-9_.-]/_}"
}

utc_stamp() { date -u +%Y%m%d-%H%M%S; }
