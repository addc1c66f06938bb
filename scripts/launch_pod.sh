#!/usr/bin/env bash
# Starts one training run (launch.py) on a TPU VM slice, detached from the SSH session.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE --config=configs/FILE.py --workdir=gs://...
                     --data_dir=gs://BUCKET/tfds [--run=RUN] [--type=TYPE] [--tpu_address=ADDR]
                     [--all_workers] [--wait] [--poll_seconds=60] [--max_wait=7d] [--project=PROJECT] [--dry-run]
                     [-- EXTRA LAUNCH FLAGS]

Runs, from ${TRM_REMOTE_DIR} on the worker(s), under nohup/setsid:
  python3 launch.py --config=CONFIG --workdir=WORKDIR --tpu=ADDR
      --config.data.data_dir=DATA_DIR [EXTRA...]
through scripts/remote_run.sh, which logs to ${TRM_REMOTE_LOGS}/RUN.log on each worker and, when
the run ends, copies that log to WORKDIR/logs/worker-<i>-<UTC start>.log (one per launch).

Where it runs: TensorFlow drives a multi-host slice from one client, so by default the command
starts on worker 0 only, with --tpu=grpc://<every worker>:8470 and TPU_LOAD_LIBRARY=0 (the
worker IPs come from 'gcloud compute tpus tpu-vm describe'). A one-host slice (e.g. v4-8) runs
with --tpu=local. --all_workers starts the same command on every worker with --tpu=local
(only for a trainer that is itself multi-client; TPUStrategy is not).

  --name=NAME          TPU name
  --zone=ZONE          zone
  --config=PATH        config file passed to launch.py (relative to the repo root)
  --workdir=DIR        run directory (gs://BUCKET/runs/<id>)
  --data_dir=DIR       TFDS data_dir of the run (gs://BUCKET/tfds; default \$TRM_DATA_DIR), passed
                       as --config.data.data_dir. A multi-host slice needs both paths on gs://: a
                       launch without them stops here, before any gcloud call (a slice known to be
                       one host, --type=v4-8 or --tpu_address=local, may use its worker's paths)
  --run=RUN            run name for the log files (default: <config stem>-<UTC time>)
  --type=TYPE          accelerator type (skips a 'describe' call to learn it)
  --tpu_address=ADDR   value for launch.py --tpu (skips the endpoint lookup)
  --all_workers        start the command on every worker (see above)
  --wait               block until the run ends (polls worker 0); exit with the run's exit code
  --poll_seconds=N     poll interval for --wait (default 60)
  --max_wait=D         stop waiting after D (e.g. 36h, 7d; default 7d) with exit code 124; the
                       run itself goes on
  --project=PROJECT    GCP project
  --dry-run            print the gcloud commands instead of running them
  -- EXTRA             further flags passed to launch.py unchanged
  -h, --help           this text

Exit codes: 0 started (without --wait); with --wait the run's exit code (launch.py: 0 ok, also
after a preemption save, so read WORKDIR/run_summary.json for finished vs preempted; 2 TPU
unavailable; 3 dataset missing; 4 non-finite loss; 143 stopped by SIGTERM before the trainer
handled it); 124 still running after --max_wait; 125 the run could not be started (SSH failed, or
another run is active on the worker); 255 lost contact with worker 0 while waiting.
EOF
}

CONFIG=""
WORKDIR=""
RUN=""
ALL_WORKERS=0
WAIT=0
POLL_SECONDS=60
MAX_WAIT=7d
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --config | --config=*)
      optval "$@"
      CONFIG="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --workdir | --workdir=*)
      optval "$@"
      WORKDIR="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --data_dir | --data_dir=*)
      optval "$@"
      DATA_DIR="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --run | --run=*)
      optval "$@"
      RUN="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --poll_seconds | --poll_seconds=*)
      optval "$@"
      POLL_SECONDS="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --max_wait | --max_wait=*)
      optval "$@"
      MAX_WAIT="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --all_workers)
      ALL_WORKERS=1
      shift
      ;;
    --wait)
      WAIT=1
      shift
      ;;
    --)
      shift
      EXTRA=("$@")
      break
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1' (launch.py flags go after --)"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}" --config "${CONFIG}" --workdir "${WORKDIR}"
[[ ${POLL_SECONDS} =~ ^[0-9]+$ ]] || usage_error "--poll_seconds must be an integer"
MAX_WAIT_S="$(duration_seconds "${MAX_WAIT}")"
[[ -n ${RUN} ]] || RUN="$(config_stem "${CONFIG}")-$(utc_stamp)"
[[ ${RUN} =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "--run may only use letters, digits, _ . -"
data_dir_from_extra "${EXTRA[@]+"${EXTRA[@]}"}"
[[ ${ALL_WORKERS} == 1 ]] || require_pod_paths --workdir "${WORKDIR}"
require_gcloud

if [[ ${ALL_WORKERS} == 1 ]]; then
  WORKER=all
  [[ -n ${TPU_ADDRESS} ]] || TPU_ADDRESS=local
  MULTI_HOST=0
  [[ ${TPU_ADDRESS} == local ]] || MULTI_HOST=1
else
  WORKER=0
  resolve_tpu_address
fi
mapfile -t ENV_ARGS < <(trainer_env_args)

train_cmd=(python3 launch.py --config="${CONFIG}" --workdir="${WORKDIR}" --tpu="${TPU_ADDRESS}")
[[ -z ${DATA_DIR} ]] || train_cmd+=(--config.data.data_dir="${DATA_DIR}")
for a in "${EXTRA[@]+"${EXTRA[@]}"}"; do
  [[ $a == --config.data.data_dir=* ]] || train_cmd+=("$a")
done
wrapper=(bash scripts/remote_run.sh --run="${RUN}" --workdir="${WORKDIR}" "${ENV_ARGS[@]}" --)
logs="${TRM_REMOTE_LOGS}"
# Refuse to start while another run is active on the worker: two clients cannot share the chips.
guard="for f in ${logs}/*.pid; do if [ -e \"\$f\" ] && kill -0 \"\$(cat \"\$f\")\" 2>/dev/null; then echo \"\$(hostname): run \$(basename \"\$f\" .pid) is still active; stop it with scripts/pod_stop.sh\" >&2; exit 3; fi; done"
# The exit file of an earlier attempt goes before the start returns, so that --wait (and anyone
# polling) never reads the previous attempt's exit code as this one's.
remote="mkdir -p ${logs} && ${guard} && rm -f ${logs}/${RUN}.exit && cd ${TRM_REMOTE_DIR} && setsid nohup $(join_cmd "${wrapper[@]}" "${train_cmd[@]}") > ${logs}/${RUN}.launcher.log 2>&1 < /dev/null & echo \"\$(hostname): started run ${RUN}\""

# A start that fails (SSH error, or the guard's "still active") exits 125, so that callers never
# mistake it for an exit code of launch.py (the guard's own 3 would read as "dataset missing").
if ! gcloud_cmd compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker="${WORKER}" --command="${remote}"; then
  echo "error: could not start run ${RUN} on ${NAME} (see the messages above)" >&2
  exit 125
fi
log "run ${RUN}: log ${logs}/${RUN}.log on worker(s) ${WORKER}; copied to ${WORKDIR%/}/logs/worker-<i>-<UTC start>.log at the end"
log "status: scripts/pod_status.sh --name=${NAME} --zone=${ZONE} --run=${RUN}"

[[ ${WAIT} == 1 ]] || exit 0

# Poll worker 0 for RUN.exit (written by remote_run.sh once the log is copied). SSH failures
# (e.g. a preempted spot slice) are retried; 30 in a row end the wait with exit code 255, and a
# run still going after --max_wait ends it with 124.
poll=(compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker=0
  --command="cat ${logs}/${RUN}.exit 2>/dev/null || echo running")
if [[ ${DRY_RUN} == 1 ]]; then
  gcloud_cmd "${poll[@]}"
  exit 0
fi
failures=0
deadline=$(($(date +%s) + MAX_WAIT_S))
while true; do
  build_gcloud_args "${poll[@]}"
  if out="$("${GCLOUD_ARGS[@]}" 2>/dev/null)"; then
    failures=0
    state="$(printf '%s\n' "${out}" | tail -n 1 | tr -d '[:space:]')"
    if [[ ${state} =~ ^[0-9]+$ ]]; then
      log "run ${RUN} ended with exit code ${state}"
      exit "${state}"
    fi
  else
    failures=$((failures + 1))
    log "warning: could not reach worker 0 (${failures} in a row)"
    if [[ ${failures} -ge 30 ]]; then
      echo "error: lost contact with ${NAME}; the state of run ${RUN} is unknown" >&2
      exit 255
    fi
  fi
  now=$(date +%s)
  if [[ ${now} -ge ${deadline} ]]; then
    echo "error: run ${RUN} has not ended after --max_wait=${MAX_WAIT}; stopped waiting (the run goes on: scripts/pod_status.sh --name=${NAME} --zone=${ZONE} --run=${RUN})" >&2
    exit 124
  fi
  sleep $((POLL_SECONDS < deadline - now ? POLL_SECONDS : deadline - now))
done
