"""Training curves of one or several runs in one PNG.

    python tools/analysis/plot_logs.py WORK_DIR [WORK_DIR ...] [--keys loss coco/bbox_mAP]
        [--out curves.png]

The code is ``efficientvit_det.cli.plot_logs``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.plot_logs import main

if __name__ == '__main__':
    run(main)
