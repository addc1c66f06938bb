#!/usr/bin/env bash
# Worker-side wrapper started by launch_pod.sh on a TPU VM (also runnable locally).
#
# Runs one command with all output in $TRM_LOG_DIR/<run>.log, records its process-group id in
# <run>.pid (pod_stop.sh kills that group) and its exit code in <run>.exit (launch_pod.sh --wait
# and run_batch.sh poll for it), then copies the log to WORKDIR/logs/worker-<i>-<UTC start>.log: one
# file per attempt, so a relaunch after a preemption keeps the preempted attempt's log.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: remote_run.sh --run=RUN --workdir=DIR [--worker_id=N] [--env=K=V]... [--pjrt] -- CMD [ARGS...]

Runs CMD on this machine, logging to $TRM_LOG_DIR/RUN.log (default ~/trm_logs), writes
RUN.pid (process group) and RUN.exit (exit code), then copies the log to
DIR/logs/worker-N-YYYYmmdd-HHMMSS.log, named by the start time (UTC) so that every launch
of a run (a relaunch after a preemption) keeps its own log (gs:// via gsutil, local paths
via cp).

  --run=RUN        run name (file names of the log, pid and exit files)
  --workdir=DIR    experiment workdir (gs://... or a local path)
  --worker_id=N    worker index for the copied log name (default: the TPU VM metadata
                   attribute agent-worker-number, else 0)
  --env=K=V        export K=V for CMD (repeatable)
  --pjrt           single-host PJRT set-up: export NEXT_PLUGGABLE_DEVICE_USE_C_API=true and
                   TF_PLUGGABLE_DEVICE_LIBRARY_PATH=/lib/libtpu.so when that file exists
                   (unless already set)
  -h, --help       this text
EOF
}

RUN=""
WORKDIR=""
WORKER_ID=""
PJRT=0
ENVS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --run=*) RUN="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --worker_id=*) WORKER_ID="${1#*=}" ;;
    --env=*) ENVS+=("${1#*=}") ;;
    --pjrt) PJRT=1 ;;
    --)
      shift
      break
      ;;
    *)
      echo "error: unknown argument '$1' (the command goes after --)" >&2
      exit 2
      ;;
  esac
  shift
done
if [[ -z ${RUN} || -z ${WORKDIR} || $# -eq 0 ]]; then
  echo "error: --run, --workdir and a command after -- are required" >&2
  exit 2
fi

LOG_DIR="${TRM_LOG_DIR:-${HOME}/trm_logs}"
mkdir -p "${LOG_DIR}"
LOG="${LOG_DIR}/${RUN}.log"
STARTED="$(date -u +%Y%m%d-%H%M%S)"
rm -f "${LOG_DIR}/${RUN}.exit"
# pod_stop.sh signals the whole process group, from the moment the pid file exists: the trap (set
# before anything else runs) keeps this shell alive (bash runs it once the command has exited), so
# the log is still closed, copied and the exit code recorded.
trap 'echo "=== received a stop signal" >>"${LOG}"' TERM INT HUP
# The pid of this shell is the process-group id when started under setsid (launch_pod.sh does).
echo "$$" >"${LOG_DIR}/${RUN}.pid"

if [[ -z ${WORKER_ID} ]]; then
  # TPU VMs expose their index in the slice as instance metadata; off-TPU this fails fast.
  WORKER_ID="$(curl -sf --max-time 2 -H 'Metadata-Flavor: Google' \
    'http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number' ||
    true)"
  [[ ${WORKER_ID} =~ ^[0-9]+$ ]] || WORKER_ID=0
fi

for kv in "${ENVS[@]+"${ENVS[@]}"}"; do
  export "${kv?}"
done
if [[ ${PJRT} == 1 ]]; then
  export NEXT_PLUGGABLE_DEVICE_USE_C_API="${NEXT_PLUGGABLE_DEVICE_USE_C_API:-true}"
  if [[ -z ${TF_PLUGGABLE_DEVICE_LIBRARY_PATH:-} && -e /lib/libtpu.so ]]; then
    export TF_PLUGGABLE_DEVICE_LIBRARY_PATH=/lib/libtpu.so
  fi
fi

{
  echo "=== run ${RUN} on $(hostname) (worker ${WORKER_ID}), started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # setup_workers.sh copies a tarball without .git and records the commit in .source_commit.
  echo "=== cwd $(pwd), commit $(git rev-parse --short HEAD 2>/dev/null || cat .source_commit 2>/dev/null || echo unknown)"
  printf '=== command:'
  printf ' %q' "$@"
  echo
} >>"${LOG}"

rc=0
"$@" >>"${LOG}" 2>&1 </dev/null || rc=$?
echo "=== exit code ${rc}, finished $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"${LOG}"

DEST="${WORKDIR%/}/logs/worker-${WORKER_ID}-${STARTED}.log"
if [[ ${WORKDIR} == gs://* ]]; then
  gsutil -q cp "${LOG}" "${DEST}" || echo "warning: could not copy ${LOG} to ${DEST}" >>"${LOG}"
else
  mkdir -p "$(dirname "${DEST}")" && cp "${LOG}" "${DEST}"
fi
# Written last so pollers see the exit code only once the log copy is done.
echo "${rc}" >"${LOG_DIR}/${RUN}.exit"
rm -f "${LOG_DIR}/${RUN}.pid"
exit "${rc}"
