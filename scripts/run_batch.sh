#!/usr/bin/env bash
# Runs experiments one after another on a TPU VM slice, unattended: skips finished ones, keeps
# going after a failure and prints a summary at the end.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE --workdir_root=gs://BUCKET/runs
                    --data_dir=gs://BUCKET/tfds CONFIG... [--type=TYPE] [--tpu_address=ADDR]
                    [--poll_seconds=60] [--max_wait=7d] [--max_attempts=3] [--lock_wait=11m]
                    [--max_lock_waits=6] [--project=PROJECT] [--dry-run] [-- EXTRA LAUNCH FLAGS]

For each CONFIG (e.g. configs/e1_1_model_small.py) in order, with WORKDIR=WORKDIR_ROOT/<stem>:
  * skips it when WORKDIR/run_summary.json has "status": "finished" (gs:// read with gsutil,
    local paths read directly; also in --dry-run); any other status (running, preempted,
    failed) is launched again and resumes from its newest checkpoint;
  * otherwise runs scripts/launch_pod.sh --wait (run name <stem>-<UTC time>) and waits for the
    run to end;
  * decides the outcome from the exit code AND WORKDIR/run_summary.json, because launch.py also
    exits 0 after saving on SIGTERM (a preempted spot VM):
      exit 0 + "finished"   -> ok
      exit 0 + "preempted"  -> preempted: re-queued at the end of the batch and relaunched (it
                               resumes), at most --max_attempts launches per config
      exit 0 + other/none   -> FAILED (the run did not say it finished)
      exit 8                -> the workdir's run.lock is held (another run, or the run of a spot
                               slice recreated under a new hostname, whose lock becomes stale
                               once its heartbeat is older than the trainer's timeout): says by
                               whom (read from WORKDIR/run.lock), waits --lock_wait and launches
                               again, at most --max_lock_waits times per config (not counted
                               in --max_attempts)
      other exit != 0       -> FAILED, with the meaning of the code (2 TPU unavailable,
                               3 dataset missing, 4 non-finite loss, 124 still running after
                               --max_wait, 125 could not start, 143 SIGTERM, 255 lost contact)
  * goes on with the next config after a failure, except after 124: that run is still active
    and the worker would refuse every further launch, so the batch stops there.
Prints one summary row per launch; exits 0 only when every config ended finished (or skipped).
Run it inside tmux/screen (or with nohup) on a machine that stays up. To stop a batch, stop this
script first: pod_stop.sh's SIGTERM makes the trainer save and report "preempted", which this
script would relaunch.

  --name=NAME            TPU name
  --zone=ZONE            zone
  --workdir_root=ROOT    parent of the run directories (gs://BUCKET/runs)
  --data_dir=DIR         TFDS data_dir of every run (gs://BUCKET/tfds; default \$TRM_DATA_DIR),
                         passed to launch_pod.sh; a multi-host slice needs it and ROOT on gs://
                         (checked before anything runs)
  --max_attempts=N       launches per config while it comes back preempted (default 3)
  --lock_wait=D          wait before relaunching a config whose workdir lock is held (default 11m:
                         longer than the 600 s after which a lock without heartbeat is stale)
  --max_lock_waits=N     such waits per config before it counts as failed (default 6)
  --type, --tpu_address, --poll_seconds, --max_wait, --project: passed to launch_pod.sh
  --dry-run              print the commands instead of running them
  -- EXTRA               flags passed to every launch.py
  -h, --help             this text
EOF
}

ROOT=""
POLL_SECONDS=60
MAX_WAIT=7d
MAX_ATTEMPTS=3
LOCK_WAIT=11m
MAX_LOCK_WAITS=6
CONFIGS=()
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --workdir_root | --workdir_root=*)
      optval "$@"
      ROOT="${OPTVAL%/}"
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
    --data_dir | --data_dir=*)
      optval "$@"
      DATA_DIR="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --lock_wait | --lock_wait=*)
      optval "$@"
      LOCK_WAIT="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --max_lock_waits | --max_lock_waits=*)
      optval "$@"
      MAX_LOCK_WAITS="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --max_attempts | --max_attempts=*)
      optval "$@"
      MAX_ATTEMPTS="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --)
      shift
      EXTRA=("$@")
      break
      ;;
    -*)
      common_flag "$@" || usage_error "unknown argument '$1' (launch.py flags go after --)"
      shift "${OPTSHIFT}"
      ;;
    *)
      CONFIGS+=("$1")
      shift
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}" --workdir_root "${ROOT}"
[[ ${#CONFIGS[@]} -gt 0 ]] || usage_error "give at least one CONFIG"
[[ ${MAX_ATTEMPTS} =~ ^[1-9][0-9]*$ ]] || usage_error "--max_attempts must be a positive integer"
[[ ${MAX_LOCK_WAITS} =~ ^[0-9]+$ ]] || usage_error "--max_lock_waits must be an integer"
duration_seconds "${MAX_WAIT}" >/dev/null
LOCK_WAIT_S="$(duration_seconds "${LOCK_WAIT}")"
data_dir_from_extra "${EXTRA[@]+"${EXTRA[@]}"}"
require_pod_paths --workdir_root "${ROOT}"
require_gcloud

launch_args=(--name="${NAME}" --zone="${ZONE}" --poll_seconds="${POLL_SECONDS}"
  --max_wait="${MAX_WAIT}" --wait)
[[ -n ${PROJECT} ]] && launch_args+=(--project="${PROJECT}")
[[ -n ${TPU_TYPE} ]] && launch_args+=(--type="${TPU_TYPE}")
[[ -n ${TPU_ADDRESS} ]] && launch_args+=(--tpu_address="${TPU_ADDRESS}")
[[ -n ${DATA_DIR} ]] && launch_args+=(--data_dir="${DATA_DIR}")
[[ ${DRY_RUN} == 1 ]] && launch_args+=(--dry-run)

# What a non-zero exit code of launch_pod.sh --wait means (launch.py's codes and launch_pod's own).
exit_meaning() {
  case "$1" in
    1) echo "error, see the log" ;;
    2) echo "TPU unavailable" ;;
    3) echo "dataset missing" ;;
    4) echo "non-finite loss" ;;
    5) echo "does not fit the chips' memory" ;;
    6) echo "preflight failed" ;;
    7) echo "no checkpoint can be restored" ;;
    8) echo "workdir in use: run.lock held" ;;
    124) echo "still running after --max_wait" ;;
    125) echo "could not start" ;;
    130) echo "SIGINT" ;;
    137) echo "killed" ;;
    143) echo "SIGTERM" ;;
    255) echo "lost contact with the TPU" ;;
    *) echo "see the log" ;;
  esac
}

# Who holds WORKDIR/run.lock (trm_tf/workdir.py RunLock: host, pid, heartbeat), in words; read
# with gsutil for gs://, directly for local paths. Prints "an unreadable lock" when it cannot.
lock_holder() {
  local path="$1/run.lock" json=""
  if is_gcs "${path}"; then
    json="$(gsutil -q cat "${path}" 2>/dev/null || true)"
  elif [[ -f ${path} ]]; then
    json="$(cat "${path}")"
  fi
  printf '%s' "${json}" | python3 -c '
import json, sys, time
try:
    d = json.load(sys.stdin)
    pid, host, age = d.get("pid"), d.get("host"), time.time() - float(d["heartbeat"])
    print(f"pid {pid} on {host} (last heartbeat {age:.0f} s ago)")
except Exception:
    print("an unreadable lock")' 2>/dev/null || echo "an unreadable lock"
}

# The queue: a preempted config is appended again (up to MAX_ATTEMPTS launches); one whose
# workdir lock is held is launched again after LOCK_WAIT (up to MAX_LOCK_WAITS times).
queue=("${CONFIGS[@]}")
declare -A attempts=() final=() lock_waits=()
results=()
stopped_at=""
i=0
while [[ ${i} -lt ${#queue[@]} ]]; do
  config="${queue[${i}]}"
  i=$((i + 1))
  stem="$(config_stem "${config}")"
  workdir="${ROOT}/${stem}"
  status="$(read_run_status "${workdir}")"
  if [[ ${status} == finished ]]; then
    log "${stem}: already finished (${workdir}/run_summary.json), skipping"
    results+=("${stem}|skipped (finished)|0")
    final[${stem}]=done
    continue
  fi
  attempts[${stem}]=$((${attempts[${stem}]:-0} + 1))
  attempt="${attempts[${stem}]}"
  log "${stem}: starting in ${workdir} (launch ${attempt}/${MAX_ATTEMPTS}${status:+, resumes a ${status} run})"
  start=$(date +%s)
  rc=0
  "${SCRIPTS_DIR}/launch_pod.sh" "${launch_args[@]}" --config="${config}" --workdir="${workdir}" \
    --run="${stem}-$(utc_stamp)" -- "${EXTRA[@]+"${EXTRA[@]}"}" || rc=$?
  elapsed=$(($(date +%s) - start))
  if [[ ${DRY_RUN} == 1 ]]; then
    # Nothing ran, so there is no outcome to report.
    results+=("${stem}|dry-run (not run)|0")
    final[${stem}]=dry-run
    continue
  fi
  if [[ ${rc} == 8 && ${lock_waits[${stem}]:-0} -lt ${MAX_LOCK_WAITS} ]]; then
    lock_waits[${stem}]=$((${lock_waits[${stem}]:-0} + 1))
    attempts[${stem}]=$((attempt - 1)) # a launch refused by the lock did not run
    result="lock held (wait ${lock_waits[${stem}]}/${MAX_LOCK_WAITS})"
    log "${stem}: exit 8: ${workdir}/run.lock is held by $(lock_holder "${workdir}"); a lock becomes stale, and is taken over, once its heartbeat is older than the trainer's timeout (600 s): launching again in ${LOCK_WAIT} (wait ${lock_waits[${stem}]}/${MAX_LOCK_WAITS})"
    results+=("${stem}|${result}|${elapsed}")
    queue=("${queue[@]:0:${i}}" "${config}" "${queue[@]:${i}}")
    sleep "${LOCK_WAIT_S}"
    continue
  fi
  if [[ ${rc} != 0 ]]; then
    result="FAILED (exit ${rc}: $(exit_meaning "${rc}"))"
    final[${stem}]=failed
    log "${stem}: ${result}"
    results+=("${stem}|${result}|${elapsed}")
    if [[ ${rc} == 124 ]]; then
      stopped_at="${stem}"
      log "${stem} is still running on the TPU; stopping the batch (further launches would be refused)"
      break
    fi
    continue
  fi
  # Exit code 0 says only that launch.py returned normally: it also does so after saving on
  # SIGTERM. The run's own summary tells finished from preempted.
  status="$(read_run_status "${workdir}")"
  case "${status}" in
    finished)
      result="ok"
      final[${stem}]=done
      ;;
    preempted)
      if [[ ${attempt} -lt ${MAX_ATTEMPTS} ]]; then
        result="preempted (re-queued)"
        queue+=("${config}")
      else
        result="PREEMPTED (${attempt}/${MAX_ATTEMPTS} launches used)"
      fi
      final[${stem}]=preempted
      ;;
    *)
      result="FAILED (exit 0, status ${status:-missing})"
      final[${stem}]=failed
      ;;
  esac
  log "${stem}: ${result}"
  results+=("${stem}|${result}|${elapsed}")
done

n_done=0
n_not_finished=0
for config in "${CONFIGS[@]}"; do
  stem="$(config_stem "${config}")"
  case "${final[${stem}]:-not run}" in
    done | dry-run) n_done=$((n_done + 1)) ;;
    *) n_not_finished=$((n_not_finished + 1)) ;;
  esac
done
if [[ -n ${stopped_at} ]]; then
  for config in "${queue[@]:${i}}"; do
    stem="$(config_stem "${config}")"
    [[ -n ${final[${stem}]:-} ]] || results+=("${stem}|not run (batch stopped)|0")
  done
fi

echo
echo "=== run_batch summary (${#CONFIGS[@]} experiments, ${n_not_finished} not finished)"
printf '%-40s %-44s %s\n' experiment result duration
for r in "${results[@]}"; do
  IFS='|' read -r stem result secs <<<"${r}"
  printf '%-40s %-44s %dh%02dm\n' "${stem}" "${result}" $((secs / 3600)) $((secs % 3600 / 60))
done
[[ ${n_not_finished} == 0 ]]
