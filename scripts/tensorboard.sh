#!/usr/bin/env bash
# Starts TensorBoard (with the profile plugin) on this machine, bound to 127.0.0.1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --logdir=gs://BUCKET/runs [--port=6006] [--dry-run]

Runs: tensorboard --logdir=LOGDIR --host=127.0.0.1 --port=PORT, then open http://127.0.0.1:PORT
(the Profile tab shows traces from capture_profile.sh or the trainer's profiler window).
A gs:// logdir needs application-default credentials ('gcloud auth application-default login').
Needs tensorboard and tensorboard-plugin-profile (both in requirements.txt).

  --logdir=DIR   TensorBoard logdir: one run (gs://BUCKET/runs/<id>) or the runs root
  --port=PORT    local port (default 6006)
  --dry-run      print the command instead of running it
  -h, --help     this text
EOF
}

LOGDIR=""
PORT=6006
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
    --dry-run)
      DRY_RUN=1
      shift
      ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_flags --logdir "${LOGDIR}"
[[ ${PORT} =~ ^[0-9]+$ ]] || usage_error "--port must be a number"

cmd=(tensorboard --logdir="${LOGDIR}" --host=127.0.0.1 --port="${PORT}")
if [[ ${DRY_RUN} == 1 ]]; then
  print_cmd "${cmd[@]}"
  exit 0
fi
command -v tensorboard >/dev/null 2>&1 ||
  die "tensorboard not found on PATH: pip install -r requirements.txt (tensorboard, tensorboard-plugin-profile)"
tb_python="$(head -n 1 "$(command -v tensorboard)" | sed -n 's/^#!//p')"
if ! ${tb_python:-python3} -c 'import tensorboard_plugin_profile' >/dev/null 2>&1; then
  log "warning: tensorboard-plugin-profile is not installed; the Profile tab will be missing"
fi
log "open http://127.0.0.1:${PORT} (Ctrl-C to stop)"
print_cmd "${cmd[@]}" >&2
exec "${cmd[@]}"
