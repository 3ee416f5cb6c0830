#!/usr/bin/env bash
# The four released COCO detectors, whole (backbone + neck + heads, without pre- and
# post-processing), on CPU at 800x1333, one after another:
# benchmarks/results/whole_cpu_800x1333/<config>.{json,csv}, quoted by the model index.
#   bash benchmarks/whole_detectors_cpu.sh
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
for config in mask_rcnn_shvit_s4 retinanet_shvit_s4 mask_rcnn_efficientvit_m4 \
              retinanet_efficientvit_m4; do
  "$PYTHON" tools/benchmark_latency.py --config "configs/$config.py" --whole --shape 800x1333 \
      --mode eager --threads 2 --iters 5 --warmup 1 \
      --out "benchmarks/results/whole_cpu_800x1333/$config"
done
