#!/usr/bin/env bash
# torchrun from the repository root with the multi-node settings taken from the
# environment (NNODES, NODE_RANK, MASTER_ADDR, PORT); dist_train.sh and
# dist_test.sh are this with their script.
#   tools/dist_launch.sh PROCS_PER_NODE SCRIPT [args...]
set -euo pipefail
PROCS_PER_NODE=$1
shift
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" --nproc_per_node="$PROCS_PER_NODE" "$@"
