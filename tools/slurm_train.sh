#!/usr/bin/env bash
# Training on a Slurm cluster (one task per GPU).
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5),
# SRUN_ARGS (extra srun options) come from the environment.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
cd "$(dirname "$0")/.."
# shellcheck disable=SC2086  # SRUN_ARGS holds several options
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="${GPUS:-8}" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u tools/train.py "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
