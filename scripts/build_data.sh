#!/usr/bin/env bash
# Builds one TFDS dataset into a data_dir (gs://BUCKET/tfds), once, on the machine it runs on.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: ${SCRIPT_NAME} --data_dir=gs://BUCKET/tfds --dataset=NAME/CONFIG [--manual_dir=DIR]
                     [--tfds_cli] [--force] [--python=python3] [--dry-run]

Builds dataset NAME/CONFIG (e.g. sudoku_extreme/sub1000_aug1000) into DATA_DIR from this
machine (a workstation or one TPU worker; every worker then reads the same files), then the
decoded cache of its train split (python3 -m trm_tf.data.cache), which lets every start and
resume skip parsing the TFRecords. Skips the build when
DATA_DIR/NAME/CONFIG/<version>/dataset_info.json already exists (the cache is still checked
and written if missing; --force rewrites both).
Default command (from the repo root):
  python3 -m trm_tf.data.prepare --dataset=NAME/CONFIG --data_dir=DATA_DIR [--manual_dir=DIR]
With --tfds_cli:
  tfds build tfds_builders/NAME --config=CONFIG --data_dir=DATA_DIR [--manual_dir=DIR]
Writing to gs:// from Python needs application-default credentials
('gcloud auth application-default login' on a workstation; TPU VMs have them).

  --data_dir=DIR     TFDS data_dir (gs://BUCKET/tfds, bucket in the TPU's region)
  --dataset=N/C      dataset name and config
  --manual_dir=DIR   folder with manually downloaded source files, passed through
  --tfds_cli         use the tfds CLI instead of trm_tf.data.prepare
  --force            build even if the dataset is already there
  --python=PY        Python interpreter (default python3)
  --dry-run          print the commands instead of running them
  -h, --help         this text
EOF
}

DATA_DIR=""
DATASET=""
MANUAL_DIR=""
TFDS_CLI=0
FORCE=0
PYTHON="python3"
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --data_dir | --data_dir=*)
      optval "$@"
      DATA_DIR="${OPTVAL%/}"
      shift "${OPTSHIFT}"
      ;;
    --dataset | --dataset=*)
      optval "$@"
      DATASET="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --manual_dir | --manual_dir=*)
      optval "$@"
      MANUAL_DIR="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --python | --python=*)
      optval "$@"
      PYTHON="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --tfds_cli)
      TFDS_CLI=1
      shift
      ;;
    --force)
      FORCE=1
      shift
      ;;
    --dry-run)
      DRY_RUN=1
      shift
      ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
require_flags --data_dir "${DATA_DIR}" --dataset "${DATASET}"
[[ ${DATASET} =~ ^[a-z0-9_]+/[A-Za-z0-9_.-]+$ ]] ||
  usage_error "--dataset must be NAME/CONFIG, e.g. sudoku_extreme/sub1000_aug1000"
ds_name="${DATASET%%/*}"
ds_config="${DATASET#*/}"
# The decoded cache of the train split (skipped when a valid one exists): starts and resumes read it
# instead of parsing the TFRecords.
cache_cmd=("${PYTHON}" -m trm_tf.data.cache --dataset="${DATASET}" --data_dir="${DATA_DIR}")
[[ ${FORCE} == 1 ]] && cache_cmd+=(--force)
# gsutil (for the existence check) needs gcloud; local data_dirs need neither.
is_gcs "${DATA_DIR}" && require_gcloud

if [[ ${FORCE} == 0 ]]; then
  info_glob="${DATA_DIR}/${ds_name}/${ds_config}/*/dataset_info.json"
  found=""
  if is_gcs "${DATA_DIR}"; then
    if [[ ${DRY_RUN} == 1 ]]; then
      print_cmd gsutil -q ls "${info_glob}"
    else
      found="$(gsutil -q ls "${info_glob}" 2>/dev/null || true)"
    fi
  else
    found="$(compgen -G "${info_glob}" || true)"
  fi
  if [[ -n ${found} ]]; then
    log "${DATASET} is already built in ${DATA_DIR} (${found%%$'\n'*}); use --force to rebuild"
    cd "${REPO_ROOT}"
    run "${cache_cmd[@]}"
    exit 0
  fi
fi

if [[ ${TFDS_CLI} == 1 ]]; then
  cmd=(tfds build "tfds_builders/${ds_name}" --config="${ds_config}" --data_dir="${DATA_DIR}")
else
  cmd=("${PYTHON}" -m trm_tf.data.prepare --dataset="${DATASET}" --data_dir="${DATA_DIR}")
fi
[[ -n ${MANUAL_DIR} ]] && cmd+=(--manual_dir="${MANUAL_DIR}")
cd "${REPO_ROOT}"
run "${cmd[@]}"
# Both the tfds CLI and trm_tf.data.prepare write the decoded cache as part of the build.
log "built ${DATASET} and its decoded cache into ${DATA_DIR}"
