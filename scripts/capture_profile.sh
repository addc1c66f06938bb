#!/usr/bin/env bash
# Captures a profile of a running trainer: on a multi-host slice from every worker's TPU profiler
# service at once (run from worker 0, into gs://); on one host from the trainer's own profiler
# server through an SSH tunnel.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE --logdir=DIR [--port=9012] [--duration_ms=3000]
                         [--worker=0] [--python=python3] [--type=TYPE] [--tpu_address=ADDR]
                         [--project=PROJECT] [--dry-run]

Multi-host slice (v4-16 and larger): the TPU lanes of a trace live in the profiler service of the
TPU runtime on every worker (port ${TRM_TPU_PROFILER_PORT}), not in the TF client on worker 0. The script
runs, on worker --worker (default 0, which reaches every worker's internal address):
  TPU_LOAD_LIBRARY=0 python3 -c 'tf.profiler.experimental.client.trace(service_addr=..., ...)'
with service_addr=grpc://<worker 0 ip>:${TRM_TPU_PROFILER_PORT},...,grpc://<worker N ip>:${TRM_TPU_PROFILER_PORT}, so every
host is traced over the same window, one file per host, into LOGDIR. LOGDIR must be gs://: a
local path would land on the worker's disk, and the script refuses it. The worker IPs come from
'gcloud compute tpus tpu-vm describe' (or --tpu_address=grpc://ip:8470,...).

One host (v4-8): the trainer process owns the chips and serves the trace itself; it must have
started tf.profiler.experimental.server.start(PORT) (its config asks for it).
1. opens a tunnel: gcloud compute tpus tpu-vm ssh NAME --worker=W -- -N -L PORT:localhost:PORT
   (waits at most 60 s for it to come up)
2. runs locally: tf.profiler.experimental.client.trace('grpc://localhost:PORT', LOGDIR, DURATION_MS)
   which writes LOGDIR/plugins/profile/<time>/ (view with scripts/tensorboard.sh --logdir=LOGDIR)
3. closes the tunnel.
Needs TensorFlow on this machine (pip install -r requirements.txt).

  --name=NAME          TPU name
  --zone=ZONE          zone
  --logdir=DIR         where the trace goes (the run's workdir; a local folder only for one host)
  --port=PORT          one host: the trainer's profiler server port (default 9012)
  --duration_ms=MS     trace length (default 3000)
  --worker=W           one host: worker running the trainer; multi-host: worker that runs the
                       capture (default 0)
  --python=PY          one host: local Python with TensorFlow (default python3)
  --type=TYPE          accelerator type (skips a 'describe' call to learn it)
  --tpu_address=ADDR   local, or the slice's grpc://ip:8470,... (skips the endpoint lookup)
  --project=PROJECT    GCP project
  --dry-run            print the commands instead of running them
  -h, --help           this text
EOF
}

LOGDIR=""
PORT=9012
DURATION_MS=3000
WORKER=0
PYTHON=python3
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --logdir | --logdir=*)
      optval "$@"
      LOGDIR="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --port | --port=*)
      optval "$@"
      PORT="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --duration_ms | --duration_ms=*)
      optval "$@"
      DURATION_MS="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --worker | --worker=*)
      optval "$@"
      WORKER="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --python | --python=*)
      optval "$@"
      PYTHON="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}" --logdir "${LOGDIR}"
[[ ${PORT} =~ ^[0-9]+$ ]] || usage_error "--port must be a number"
[[ ${DURATION_MS} =~ ^[0-9]+$ ]] || usage_error "--duration_ms must be a number"
[[ ${WORKER} =~ ^[0-9]+$ ]] || usage_error "--worker must be a worker index"
# Known topology and a local logdir: refuse before any gcloud call.
if [[ -n ${TPU_TYPE} && -z ${TPU_ADDRESS} ]] && is_multi_host "${TPU_TYPE}" && ! is_gcs "${LOGDIR}"; then
  die "a multi-host slice is profiled from worker ${WORKER} on the TPU, so --logdir must be gs://, got '${LOGDIR}'"
fi
require_gcloud

# The same one-line snippet serves both modes: argv = service_addr (comma-separated for several
# hosts), logdir, duration in ms.
trace_py='import sys, tensorflow as tf; tf.profiler.experimental.client.trace(service_addr=sys.argv[1], logdir=sys.argv[2], duration_ms=int(sys.argv[3])); print("profile written under", sys.argv[2])'

resolve_tpu_address
if [[ ${MULTI_HOST} == 1 ]]; then
  is_gcs "${LOGDIR}" ||
    die "a multi-host slice is profiled from worker ${WORKER} on the TPU, so --logdir must be gs://, got '${LOGDIR}'"
  # grpc://ip:8470,... (the trainer's --tpu) -> the same hosts' profiler services.
  hosts="${TPU_ADDRESS//grpc:\/\//}"
  hosts="${hosts//:${TRM_TPU_GRPC_PORT}/}"
  service_addr="$(endpoints_to_grpc "${hosts}" "${TRM_TPU_PROFILER_PORT}")"
  # TPU_LOAD_LIBRARY=0: importing TF on a worker must not try to take the chips from the runtime.
  remote="TPU_LOAD_LIBRARY=0 $(join_cmd python3 -c "${trace_py}" "${service_addr}" "${LOGDIR}" "${DURATION_MS}")"
  gcloud_cmd compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker="${WORKER}" --command="${remote}"
  log "view it with: scripts/tensorboard.sh --logdir=${LOGDIR} (Profile tab; one host per worker)"
  exit 0
fi

build_gcloud_args compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker="${WORKER}" -- \
  -N -L "${PORT}:localhost:${PORT}"
tunnel=("${GCLOUD_ARGS[@]}")
trace=("${PYTHON}" -c "${trace_py}" "grpc://localhost:${PORT}" "${LOGDIR}" "${DURATION_MS}")

if [[ ${DRY_RUN} == 1 ]]; then
  echo "+ $(join_cmd "${tunnel[@]}") &"
  print_cmd "${trace[@]}"
  echo "+ kill <tunnel pid>"
  exit 0
fi

print_cmd "${tunnel[@]}" >&2
"${tunnel[@]}" &
TUNNEL_PID=$!
# Close the tunnel whatever happens (only the ssh process this script started).
trap 'kill "${TUNNEL_PID}" 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  if (echo >"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then break; fi
  kill -0 "${TUNNEL_PID}" 2>/dev/null || die "the SSH tunnel exited; check --name/--zone/--worker"
  sleep 1
done
(echo >"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null || die "port ${PORT} not reachable through the tunnel after 60 s"
run "${trace[@]}"
log "view it with: scripts/tensorboard.sh --logdir=${LOGDIR} (Profile tab)"
