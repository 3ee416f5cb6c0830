#!/usr/bin/env bash
# Distributed evaluation with torchrun.
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
exec "$(dirname "$0")/dist_launch.sh" "$GPUS" tools/test.py "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "$@"
