"""Backbone (or whole model) latency on CPU / GPU in several modes side by side.

    python tools/benchmark_latency.py --backbone shvit_s4 timm:resnet50 --shape 512x512 \
        --batch 1 --device cpu --threads 2 --mode eager fused channels_last compile onnxruntime \
        --out benchmarks/results/cpu
    python tools/benchmark_latency.py --config configs/mask_rcnn_shvit_s4.py [--whole] \
        [--cfg-options model.test_cfg.rpn.max_per_img=300] ...
    python tools/benchmark_latency.py --backbone shvit_s4 --mode best

Backbone mode needs torch only (no mmcv / mmdet). --whole times a detector from
image to final detections, with per-stage times in its eager row.
"""
from efficientvit_det.fileio import exit_cleanly_on_sigterm
from efficientvit_det.latency.engine import main

if __name__ == '__main__':
    exit_cleanly_on_sigterm()
    main()
