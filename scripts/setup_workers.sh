#!/usr/bin/env bash
# Puts the repository on every worker of a TPU VM slice, installs its dependencies with
# tensorflow-tpu in place of tensorflow-cpu, and checks that TensorFlow sees the TPU chips.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  local pin
  pin="$(tf_tpu_requirement 2>/dev/null || echo 'tensorflow-tpu==<the tensorflow-cpu pin>')"
  cat <<EOF
Usage: ${SCRIPT_NAME} --name=NAME --zone=ZONE [--repo=URL [--ref=REF]] [--skip_install]
                       [--skip_check] [--type=TYPE] [--tpu_address=ADDR] [--project=PROJECT]
                       [--dry-run]

1. Code: without --repo, tars the tracked files of this checkout (uncommitted edits included),
   copies the tarball to every worker (scp --worker=all) and unpacks it into ${TRM_REMOTE_DIR},
   replacing what was there. With --repo, every worker runs git clone URL instead.
2. Install (every worker): requirements.txt minus tensorflow-cpu, plus
   ${pin} (the version of the tensorflow-cpu pin of requirements.txt, the same
   source create_tpu.sh checks the runtime image against) from ${TRM_LIBTPU_INDEX}.
   cloud-tpu-client is never installed (it pins an old protobuf and breaks import tensorflow).
3. Check: every worker prints its /dev/accel* chip count and TF version; worker 0 then runs
   scripts/check_tpu.py, which builds the TPU strategy with the trainer's own code
   (trm_tf.distribute: the whole slice for multi-host types, through the workers' gRPC
   endpoints; --tpu=local on one host) and runs one matmul per replica.

  --name=NAME          TPU name
  --zone=ZONE          zone
  --repo=URL           git URL to clone on the workers instead of copying this checkout
  --ref=REF            branch or tag for --repo (default: the remote's default branch)
  --skip_install       only copy the code (dependencies already installed)
  --skip_check         skip step 3
  --type=TYPE          accelerator type (skips a 'describe' call to learn it)
  --tpu_address=ADDR   TPU address for the check (local, or grpc://ip:8470,...)
  --project=PROJECT    GCP project
  --dry-run            print the gcloud commands instead of running them
  -h, --help           this text
EOF
}

REPO_URL=""
REF=""
SKIP_INSTALL=0
SKIP_CHECK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --repo | --repo=*)
      optval "$@"
      REPO_URL="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --ref | --ref=*)
      optval "$@"
      REF="${OPTVAL}"
      shift "${OPTSHIFT}"
      ;;
    --skip_install)
      SKIP_INSTALL=1
      shift
      ;;
    --skip_check)
      SKIP_CHECK=1
      shift
      ;;
    *)
      common_flag "$@" || usage_error "unknown argument '$1'"
      shift "${OPTSHIFT}"
      ;;
  esac
done
require_flags --name "${NAME}" --zone "${ZONE}"
[[ -z ${REF} || -n ${REPO_URL} ]] || usage_error "--ref needs --repo"
TPU_REQUIREMENT="$(tf_tpu_requirement)"
require_gcloud

ssh_all() { gcloud_cmd compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker=all --command="$1"; }

# 1. Code.
if [[ -n ${REPO_URL} ]]; then
  clone=(git clone --depth=1)
  [[ -n ${REF} ]] && clone+=(--branch="${REF}")
  clone+=("${REPO_URL}")
  ssh_all "rm -rf ${TRM_REMOTE_DIR} && $(join_cmd "${clone[@]}") ${TRM_REMOTE_DIR}"
else
  git -C "${REPO_ROOT}" rev-parse --git-dir >/dev/null 2>&1 ||
    die "${REPO_ROOT} is not a git checkout; use --repo=URL"
  commit="$(git -C "${REPO_ROOT}" rev-parse --short HEAD)"
  if [[ -n $(git -C "${REPO_ROOT}" status --porcelain --untracked-files=no) ]]; then
    commit+="-dirty"
    log "warning: the checkout has uncommitted changes; they are copied too (commit ${commit})"
  fi
  tarball="${TMPDIR:-/tmp}/trm-tf-src.tar.gz"
  run_sh "cd $(quote_arg "${REPO_ROOT}") && git ls-files -z | tar --null -czf $(quote_arg "${tarball}") -T -"
  gcloud_cmd compute tpus tpu-vm scp "${tarball}" "${NAME}:trm-tf-src.tar.gz" --zone="${ZONE}" \
    --worker=all
  ssh_all "rm -rf ${TRM_REMOTE_DIR} && mkdir -p ${TRM_REMOTE_DIR} && tar -xzf ~/trm-tf-src.tar.gz -C ${TRM_REMOTE_DIR} && rm -f ~/trm-tf-src.tar.gz && echo ${commit} > ${TRM_REMOTE_DIR}/.source_commit"
fi

# 2. Dependencies: the dev pin tensorflow-cpu==X.Y.Z becomes tensorflow-tpu==X.Y.Z (same release).
if [[ ${SKIP_INSTALL} == 0 ]]; then
  ssh_all "cd ${TRM_REMOTE_DIR} && sed '/^tensorflow-cpu/d' requirements.txt > /tmp/trm_requirements.txt && python3 -m pip install -r /tmp/trm_requirements.txt ${TPU_REQUIREMENT} -f ${TRM_LIBTPU_INDEX} && if python3 -m pip show cloud-tpu-client >/dev/null 2>&1; then echo \"warning: \$(hostname) has cloud-tpu-client installed; it is not needed and can break protobuf\"; fi"
fi

# 3. Check.
if [[ ${SKIP_CHECK} == 0 ]]; then
  # TPU_LOAD_LIBRARY=0: importing TF just to print its version must not lock the chips.
  ssh_all "echo \"\$(hostname): \$(ls /dev/accel* 2>/dev/null | wc -l) TPU chips, TF \$(TPU_LOAD_LIBRARY=0 python3 -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null || echo missing)\""
  resolve_tpu_address
  # The check runs in the trainer's environment (what remote_run.sh sets for launch_pod.sh's runs:
  # --env=TPU_LOAD_LIBRARY=0 on a pod, --pjrt on one host), so it cannot pass where training fails.
  if [[ ${MULTI_HOST} == 1 ]]; then
    env_prefix="TPU_LOAD_LIBRARY=0"
  else
    env_prefix="export NEXT_PLUGGABLE_DEVICE_USE_C_API=\${NEXT_PLUGGABLE_DEVICE_USE_C_API:-true} && if [ -z \"\${TF_PLUGGABLE_DEVICE_LIBRARY_PATH:-}\" ] && [ -e /lib/libtpu.so ]; then export TF_PLUGGABLE_DEVICE_LIBRARY_PATH=/lib/libtpu.so; fi &&"
  fi
  gcloud_cmd compute tpus tpu-vm ssh "${NAME}" --zone="${ZONE}" --worker=0 \
    --command="cd ${TRM_REMOTE_DIR} && ${env_prefix} python3 scripts/check_tpu.py --tpu=$(quote_arg "${TPU_ADDRESS}")"
fi
log "Workers ready. Next: scripts/build_data.sh (once per dataset), then scripts/launch_pod.sh"
