"""Train a detector (mmdet) or segmentor (mmseg) config.

    python tools/train.py configs/mask_rcnn_shvit_s4.py [--work-dir DIR] [--resume [CKPT]]
        [--amp] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]
"""
from efficientvit_det.cli import run, train_main

if __name__ == '__main__':
    run(train_main)
