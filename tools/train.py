"""Train a detector (mmdet) or segmentor (mmseg) config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--overwrite]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]

The code is ``efficientvit_det.cli.train``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.train import train_main

if __name__ == '__main__':
    run(train_main)
