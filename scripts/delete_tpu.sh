#!/usr/bin/env bash
# Deletes a TPU VM created by create_tpu.sh (and its queued resource, if it came from one).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE [--queued] [--project=PROJECT] [--dry-run]

Deletes TPU VM NAME without asking for confirmation. Copy what you need from the workers first
(run logs are already in WORKDIR/logs/ once a run ends).

  --name=NAME        TPU name
  --zone=ZONE        zone
  --queued           NAME is a queued resource (created with --queued or --spot): delete it with
                     --force, which also deletes its TPU. Without this flag the script asks gcloud
                     whether a queued resource NAME exists (not in --dry-run).
  --project=PROJECT  GCP project
  --dry-run          print the gcloud commands instead of running them
  -h, --help         this text
EOF
}

QUEUED=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --queued)
      QUEUED=1
      shift
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}"
require_gcloud

if [[ ${QUEUED} == 0 && ${DRY_RUN} == 0 ]]; then
  build_gcloud_args compute tpus queued-resources describe "${NAME}" --zone="${ZONE}" \
    --format='value(name)'
  if "${GCLOUD_ARGS[@]}" >/dev/null 2>&1; then
    QUEUED=1
  fi
fi

if [[ ${QUEUED} == 1 ]]; then
  gcloud_cmd compute tpus queued-resources delete "${NAME}" --zone="${ZONE}" --force
else
  gcloud_cmd compute tpus tpu-vm delete "${NAME}" --zone="${ZONE}"
fi
