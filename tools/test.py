"""Evaluate a checkpoint: COCO bbox/segm mAP (mmdet) or mIoU (mmseg).

    python tools/test.py CONFIG CHECKPOINT [--out FILE] [--show-dir DIR] [--cfg-options ...]
"""
from efficientvit_det.cli import run, test_main

if __name__ == '__main__':
    run(test_main)
