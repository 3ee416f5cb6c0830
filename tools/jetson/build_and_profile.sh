#!/usr/bin/env bash
# On a Jetson with JetPack: build a TensorRT engine from our ONNX with pinned
# trtexec flags, profile it, and write the numbers in our latency schema.
#   tools/jetson/build_and_profile.sh MODEL.onnx TARGET [HxW] [BATCH]
# Export the ONNX first (on any machine): python tools/export_onnx.py --backbone TARGET
# (or --config CONFIG --whole for a whole detector). A file exported at a fixed size
# is built at its own shape (HxW and BATCH must be it); a --dynamic one at HxW, BATCH.
set -euo pipefail
ONNX=$1
TARGET=$2
SHAPE=${3:-512x512}
BATCH=${4:-1}
OUT=${OUT:-benchmarks/results/jetson_${TARGET}_${SHAPE}_b${BATCH}}
H=${SHAPE%x*}
W=${SHAPE#*x}
cd "$(dirname "$0")/../.."

echo "Power mode (must be MAXN with clocks locked for comparable numbers):"
if command -v nvpmodel >/dev/null; then nvpmodel -q || true; else echo "  nvpmodel not found: not a Jetson?"; fi
echo "  run: sudo nvpmodel -m 0 && sudo jetson_clocks"

CMD=$(python - "$ONNX" "$TARGET" "$BATCH" "$H" "$W" <<'PY'
import sys
from efficientvit_det.deploy.trtexec import build_command, quote
onnx, target, batch, h, w = sys.argv[1:]
try:
    print(quote(build_command(onnx, f'{onnx[:-5]}_b{batch}_{h}x{w}_fp16.engine', int(batch),
                              int(h), int(w))))
except ValueError as err:
    sys.exit(f'build_and_profile.sh: {err}')
PY
)
echo "+ $CMD"
LOG="${OUT}.trtexec.log"
mkdir -p "$(dirname "$OUT")"
eval "$CMD" | tee "$LOG"
python tools/jetson/parse_trtexec.py "$LOG" --target "$TARGET" --shape "$SHAPE" --batch "$BATCH" --out "$OUT"
