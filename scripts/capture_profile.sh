#!/usr/bin/env bash
# Captures a profile from a running trainer on worker 0 through an SSH tunnel.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE --logdir=DIR [--port=9012] [--duration_ms=3000]
                         [--worker=0] [--python=python3] [--project=PROJECT] [--dry-run]

Needs a trainer that started a profiler server on PORT (the trainer calls
tf.profiler.experimental.server.start(PORT) when its config asks for it).
1. opens a tunnel: gcloud compute tpus tpu-vm ssh NAME --worker=0 -- -N -L PORT:localhost:PORT
2. runs locally: tf.profiler.experimental.client.trace('grpc://localhost:PORT', LOGDIR, DURATION_MS)
   which writes LOGDIR/plugins/profile/<time>/ (view with scripts/tensorboard.sh --logdir=LOGDIR)
3. closes the tunnel.
Needs TensorFlow on this machine (pip install -r requirements.txt).

  --name=NAME          TPU name
  --zone=ZONE          zone
  --logdir=DIR         where the trace goes (the run's workdir, or a local folder)
  --port=PORT          profiler server port on the worker (default 9012)
  --duration_ms=MS     trace length (default 3000)
  --worker=W           worker running the trainer (default 0, the chief)
  --python=PY          Python with TensorFlow (default python3)
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
require_gcloud

build_gcloud_args compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker="${WORKER}" -- \
  -N -L "${PORT}:localhost:${PORT}"
tunnel=("${GCLOUD_ARGS[@]}")
trace=("${PYTHON}" -c 'import sys, tensorflow as tf; tf.profiler.experimental.client.trace(sys.argv[1], sys.argv[2], int(sys.argv[3])); print("profile written under", sys.argv[2])'
  "grpc://localhost:${PORT}" "${LOGDIR}" "${DURATION_MS}")

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
