"""Predict on your own images: an image, a folder of images or a video.

    python tools/infer.py INPUT CONFIG_OR_NAME [--weights CKPT] [--out-dir D]
        [--score-thr T] [--device cpu|cuda] [--ann-file COCO_JSON]

The code is ``efficientvit_det.cli.infer``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.infer import main

if __name__ == '__main__':
    run(main)
