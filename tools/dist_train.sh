#!/usr/bin/env bash
# Distributed training with PyTorch DDP through torchrun.
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
set -euo pipefail
CONFIG=$1
GPUS=$2
shift 2
exec "$(dirname "$0")/dist_launch.sh" "$GPUS" tools/train.py "$CONFIG" --launcher pytorch "$@"
