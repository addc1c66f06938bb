#!/usr/bin/env bash
# Stops runs started by launch_pod.sh on every worker of a TPU VM slice.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE [--run=RUN] [--signal=TERM|INT|KILL]
                   [--project=PROJECT] [--dry-run]

Sends SIGNAL (default TERM) to the process group of each active run recorded in
${TRM_REMOTE_LOGS}/RUN.pid on every worker (--worker=all). With TERM/INT, remote_run.sh still
closes the log, copies it to WORKDIR/logs/ and records exit code 143/130; with KILL nothing is
copied and this script records exit code 137 itself. Processes not started by launch_pod.sh are
left alone.

  --name=NAME        TPU name
  --zone=ZONE        zone
  --run=RUN          stop only this run (default: every active run)
  --signal=SIG       TERM (default), INT or KILL
  --project=PROJECT  GCP project
  --dry-run          print the gcloud command instead of running it
  -h, --help         this text
EOF
}

RUN=""
SIGNAL=TERM
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --run | --run=*)
      optval "$@"
      RUN="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --signal | --signal=*)
      optval "$@"
      SIGNAL="${OPTVAL#SIG}"
      shift "${OPTSHIFT}"
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}"
[[ ${SIGNAL} =~ ^(TERM|INT|KILL)$ ]] || usage_error "--signal must be TERM, INT or KILL"
[[ -z ${RUN} || ${RUN} =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "--run may only use letters, digits, _ . -"
require_gcloud

pattern="${RUN:-*}"
remote="cd ${TRM_REMOTE_LOGS} 2>/dev/null || { echo \"\$(hostname): no runs\"; exit 0; }; n=0; for f in ${pattern}.pid; do [ -e \"\$f\" ] || continue; p=\$(cat \"\$f\"); r=\${f%.pid}; if kill -0 \"\$p\" 2>/dev/null; then kill -${SIGNAL} -- \"-\$p\" && echo \"\$(hostname): sent SIG${SIGNAL} to run \$r (process group \$p)\"; n=\$((n+1)); fi; if [ ${SIGNAL} = KILL ]; then [ -e \"\$r.exit\" ] || echo 137 > \"\$r.exit\"; rm -f \"\$f\"; fi; done; [ \$n -gt 0 ] || echo \"\$(hostname): no active run\""
gcloud_cmd compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker=all --command="${remote}"
