#!/usr/bin/env bash
# Prints the value of launch.py's --tpu for a TPU VM slice: its hosts' grpc addresses (multi-host)
# or "local" (one host), from 'gcloud compute tpus tpu-vm describe', as launch_pod.sh passes it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE [--type=TYPE] [--project=PROJECT] [--dry-run]

Prints what launch.py's --tpu needs for TPU VM NAME: "local" for a one-host slice (run there),
else the comma-separated grpc://<worker ip>:${TRM_TPU_GRPC_PORT} address of every host, for the
client on worker 0. launch.py refuses a bare TPU name (resolving it needs the Cloud TPU API
client, which this project does not install); on worker 0 run, e.g.:
  python launch.py --config=configs/paper_arc1.py --workdir=gs://BUCKET/runs/paper_arc1
      --tpu=\$(scripts/${SCRIPT_NAME} --name=NAME --zone=ZONE) --config.data.data_dir=gs://BUCKET/tfds
(scripts/launch_pod.sh does the same from a workstation.)

  --name=NAME          TPU name
  --zone=ZONE          zone
  --type=TYPE          accelerator type (skips one 'describe' call)
  --project=PROJECT    GCP project
  --dry-run            print the gcloud commands (on stderr) and a placeholder address
  -h, --help           this text
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}"
require_gcloud
resolve_tpu_address
printf '%s\n' "${TPU_ADDRESS}"
