"""Backbone (or whole model) latency on CPU / GPU in several modes side by side.

    python tools/benchmark_latency.py --backbone shvit_s4 timm:resnet50 --shape 512x512 \\
        --device cpu --threads 2 --mode eager fused onnxruntime [--out OUT]
    python tools/benchmark_latency.py --config CONFIG [--whole] [--cfg-options ...]

The code is ``efficientvit_det.cli.benchmark_latency``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.benchmark_latency import main

if __name__ == '__main__':
    run(main)
