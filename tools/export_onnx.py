"""Export a backbone or a whole model to ONNX, validated against PyTorch.

    python tools/export_onnx.py --backbone shvit_s4 --shape 512x512 [--dynamic] [--fused]
    python tools/export_onnx.py --config CONFIG --whole --checkpoint CKPT --shape 800x1333

The code is ``efficientvit_det.cli.export_onnx``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.export_onnx import main

if __name__ == '__main__':
    run(main)
