"""Evaluate a checkpoint: COCO bbox/segm mAP (mmdet) or mIoU (mmseg).

    python tools/test.py CONFIG CHECKPOINT [--out FILE] [--show-dir DIR] [--work-dir DIR]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]

The code is ``efficientvit_det.cli.test``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.test import test_main

if __name__ == '__main__':
    run(test_main)
