#!/usr/bin/env bash
# Creates a Cloud TPU VM (slice) for trm-tf: on demand, or through a queued resource (--queued,
# and always for --spot, because spot capacity is handed out through the queue).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  local tf
  tf="$(tf_version 2>/dev/null || echo X.Y.Z)"
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE --type=TYPE [--version=VERSION] [--spot|--queued]
                     [--wait] [--max_wait=24h] [--poll_seconds=60] [--project=PROJECT] [--dry-run]

Creates TPU VM NAME of accelerator type TYPE (e.g. v4-32 = 16 chips on 4 hosts) in ZONE.
The TensorFlow version is the tensorflow-cpu pin of requirements.txt (now ${tf}); the runtime
image must be a TensorFlow image of the same minor version, with the -pod- variant exactly for
multi-host types. Anything else is refused before gcloud is called: a base image such as
tpu-ubuntu2204-base has no TF TPU runtime, so a pod cannot serve TF's single-client program.
Before creating, the script lists the zone's runtime versions ('gcloud compute tpus tpu-vm
versions list'); when the image is not among them it stops with one line naming the
tpu-vm-tf-* images the zone has and what to change (--version, or the requirements.txt pin).

  --name=NAME        TPU (and queued-resource) name
  --zone=ZONE        zone, e.g. us-central2-b (keep the GCS bucket in the same region)
  --type=TYPE        accelerator type, e.g. v4-8 (one host), v4-32, v4-64
  --version=VERSION  TPU software version (default: tpu-vm-tf-${tf}-pod-pjrt for
                     multi-host types, tpu-vm-tf-${tf}-pjrt for one host)
  --queued           create through 'gcloud compute tpus queued-resources create' (waits in the
                     queue instead of failing when the zone has no capacity)
  --spot             spot (preemptible, cheaper) capacity; implies --queued
  --wait             with --queued/--spot: poll until the queued resource is ACTIVE
  --max_wait=D       give up waiting after D (e.g. 90m, 24h; default 24h); the request stays queued
  --poll_seconds=N   poll interval for --wait (default 60)
  --project=PROJECT  GCP project (default: gcloud's core/project)
  --dry-run          print the gcloud commands instead of running them
  -h, --help         this text
EOF
}

VERSION=""
SPOT=0
QUEUED=0
WAIT=0
MAX_WAIT=24h
POLL_SECONDS=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --version | --version=*)
      optval "$@"
      VERSION="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --spot)
      SPOT=1
      QUEUED=1
      shift
      ;;
    --queued)
      QUEUED=1
      shift
      ;;
    --wait)
      WAIT=1
      shift
      ;;
    --max_wait | --max_wait=*)
      optval "$@"
      MAX_WAIT="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --poll_seconds | --poll_seconds=*)
      optval "$@"
      POLL_SECONDS="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
TYPE="${TPU_TYPE}"
require_flags --name "${NAME}" --zone "${ZONE}" --type "${TYPE}"
[[ ${TYPE} =~ ^v[0-9a-z]+-[0-9]+$ ]] || usage_error "--type must look like v4-32, got '${TYPE}'"
[[ ${POLL_SECONDS} =~ ^[0-9]+$ ]] || usage_error "--poll_seconds must be an integer"
MAX_WAIT_S="$(duration_seconds "${MAX_WAIT}")"
TF_VERSION="$(tf_version)"
[[ -n ${VERSION} ]] || VERSION="$(default_runtime_version "${TYPE}" "${TF_VERSION}")"
check_runtime_version "${TYPE}" "${VERSION}" "${TF_VERSION}"
require_gcloud

# Whether the zone offers that image is no launch-day surprise: ask before creating anything.
offered="$(gcloud_query "${VERSION}" compute tpus tpu-vm versions list --zone="${ZONE}" \
  --format='value(version)')" ||
  die "could not list the TPU runtime versions of ${ZONE} (see gcloud's message above)"
check_runtime_offered "${TYPE}" "${VERSION}" "${TF_VERSION}" "${offered}"

if [[ ${QUEUED} == 0 ]]; then
  gcloud_cmd compute tpus tpu-vm create "${NAME}" --zone="${ZONE}" \
    --accelerator-type="${TYPE}" --version="${VERSION}"
  log "TPU ${NAME} created. Next: scripts/setup_workers.sh --name=${NAME} --zone=${ZONE}"
  exit 0
fi

args=(compute tpus queued-resources create "${NAME}" --node-id="${NAME}" --zone="${ZONE}"
  --accelerator-type="${TYPE}" --runtime-version="${VERSION}")
[[ ${SPOT} == 1 ]] && args+=(--spot)
gcloud_cmd "${args[@]}"

state_query=(compute tpus queued-resources describe "${NAME}" --zone="${ZONE}"
  --format='value(state.state)')
if [[ ${WAIT} == 0 ]]; then
  log "Queued. Check with: $(join_cmd gcloud "${state_query[@]}") (ACTIVE = ready)"
  exit 0
fi
deadline=$(($(date +%s) + MAX_WAIT_S))
while true; do
  state="$(gcloud_query ACTIVE "${state_query[@]}")"
  log "queued resource ${NAME}: ${state}"
  case "${state}" in
    ACTIVE) break ;;
    FAILED | SUSPENDED) die "queued resource ${NAME} is ${state}" ;;
  esac
  now=$(date +%s)
  if [[ ${now} -ge ${deadline} ]]; then
    die "queued resource ${NAME} is still ${state:-in an unknown state} after --max_wait=${MAX_WAIT}; it stays queued (check: $(join_cmd gcloud "${state_query[@]}"); cancel: scripts/delete_tpu.sh --queued)"
  fi
  sleep $((POLL_SECONDS < deadline - now ? POLL_SECONDS : deadline - now))
done
log "TPU ${NAME} is ready. Next: scripts/setup_workers.sh --name=${NAME} --zone=${ZONE}"
