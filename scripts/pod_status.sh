#!/usr/bin/env bash
# Shows, for every worker of a TPU VM slice, the tail of the newest run log, finished runs'
# exit codes and the trainer processes still running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE [--run=RUN] [--lines=20] [--worker=all]
                     [--project=PROJECT] [--dry-run]

Prints per worker: host name, the last LINES lines of ${TRM_REMOTE_LOGS}/RUN.log (default: the
newest log), the exit codes of ended runs (RUN.exit) and the running launch.py / remote_run.sh
processes. On a multi-host slice the trainer runs on worker 0 only; the other workers show none.

  --name=NAME        TPU name
  --zone=ZONE        zone
  --run=RUN          run to show (default: the newest log)
  --lines=N          number of log lines (default 20)
  --worker=W         worker index or 'all' (default all)
  --project=PROJECT  GCP project
  --dry-run          print the gcloud command instead of running it
  -h, --help         this text
EOF
}

RUN=""
LINES=20
WORKER=all
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
    --lines | --lines=*)
      optval "$@"
      LINES="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --worker | --worker=*)
      optval "$@"
      WORKER="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}"
[[ ${LINES} =~ ^[0-9]+$ ]] || usage_error "--lines must be an integer"
[[ ${WORKER} == all || ${WORKER} =~ ^[0-9]+$ ]] || usage_error "--worker must be 'all' or an index"
[[ -z ${RUN} || ${RUN} =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "--run may only use letters, digits, _ . -"
require_gcloud

pattern="${RUN:-*}"
remote="echo \"=== \$(hostname)\"; cd ${TRM_REMOTE_LOGS} 2>/dev/null || { echo 'no runs on this worker'; exit 0; }; log=\$(ls -t ${pattern}.log 2>/dev/null | grep -v '\\.launcher\\.log\$' | head -n 1); if [ -n \"\$log\" ]; then echo \"--- last ${LINES} lines of \$log\"; tail -n ${LINES} \"\$log\"; else echo 'no run log'; fi; for f in ${pattern}.exit; do [ -e \"\$f\" ] && echo \"--- run \${f%.exit} ended with exit code \$(cat \"\$f\")\"; done; echo '--- trainer processes'; ps -eo pid,etime,args | grep -E '[l]aunch\\.py|[r]emote_run\\.sh' || echo '(none)'"
gcloud_cmd compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker="${WORKER}" --command="${remote}"
