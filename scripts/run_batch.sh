#!/usr/bin/env bash
# Runs experiments one after another on a TPU VM slice, unattended: skips finished ones, keeps
# going after a failure and prints a summary at the end.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE --workdir_root=gs://BUCKET/runs CONFIG...
                    [--type=TYPE] [--tpu_address=ADDR] [--poll_seconds=60]
                    [--project=PROJECT] [--dry-run] [-- EXTRA LAUNCH FLAGS]

For each CONFIG (e.g. configs/e1_1_model_small.py) in order, with WORKDIR=WORKDIR_ROOT/<stem>:
  * skips it when WORKDIR/run_summary.json has "status": "finished" (gs:// read with gsutil,
    local paths read directly; also in --dry-run);
  * otherwise runs scripts/launch_pod.sh --wait (run name <stem>-<UTC time>) and waits for the
    run to end;
  * records ok / FAILED (exit code) / skipped and the duration, and goes on with the next one.
Prints a summary table at the end; exits 1 when any run failed.
Run it inside tmux/screen (or with nohup) on a machine that stays up.

  --name=NAME            TPU name
  --zone=ZONE            zone
  --workdir_root=ROOT    parent of the run directories (gs://BUCKET/runs)
  --type, --tpu_address, --poll_seconds, --project: passed to launch_pod.sh
  --dry-run              print the commands instead of running them
  -- EXTRA               flags passed to every launch.py
  -h, --help             this text
EOF
}

ROOT=""
POLL_SECONDS=60
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
require_gcloud

launch_args=(--name="${NAME}" --zone="${ZONE}" --poll_seconds="${POLL_SECONDS}" --wait)
[[ -n ${PROJECT} ]] && launch_args+=(--project="${PROJECT}")
[[ -n ${TPU_TYPE} ]] && launch_args+=(--type="${TPU_TYPE}")
[[ -n ${TPU_ADDRESS} ]] && launch_args+=(--tpu_address="${TPU_ADDRESS}")
[[ ${DRY_RUN} == 1 ]] && launch_args+=(--dry-run)

results=()
n_failed=0
for config in "${CONFIGS[@]}"; do
  stem="$(config_stem "${config}")"
  workdir="${ROOT}/${stem}"
  status="$(read_run_status "${workdir}")"
  if [[ ${status} == finished ]]; then
    log "${stem}: already finished (${workdir}/run_summary.json), skipping"
    results+=("${stem}|skipped (finished)|0")
    continue
  fi
  log "${stem}: starting in ${workdir}"
  start=$(date +%s)
  rc=0
  "${SCRIPTS_DIR}/launch_pod.sh" "${launch_args[@]}" --config="${config}" --workdir="${workdir}" \
    --run="${stem}-$(utc_stamp)" -- "${EXTRA[@]+"${EXTRA[@]}"}" || rc=$?
  elapsed=$(($(date +%s) - start))
  if [[ ${rc} == 0 ]]; then
    if [[ ${DRY_RUN} == 1 ]]; then results+=("${stem}|ok (dry-run)|0"); else results+=("${stem}|ok|${elapsed}"); fi
  else
    n_failed=$((n_failed + 1))
    results+=("${stem}|FAILED (exit ${rc})|${elapsed}")
    log "${stem}: failed with exit code ${rc}; continuing with the next experiment"
  fi
done

echo
echo "=== run_batch summary (${#CONFIGS[@]} experiments, ${n_failed} failed)"
printf '%-40s %-22s %s\n' experiment result duration
for r in "${results[@]}"; do
  IFS='|' read -r stem result secs <<<"${r}"
  printf '%-40s %-22s %dh%02dm\n' "${stem}" "${result}" $((secs / 3600)) $((secs % 3600 / 60))
done
[[ ${n_failed} == 0 ]]
