"""The main job on the built-in toy dataset (no COCO needed).

    python tools/demo.py [--config C] [--work-dir work_dirs/demo] [--data-root D]
        [--epochs N] [--cfg-options KEY=VALUE ...]

The code is ``efficientvit_det.cli.demo``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.demo import main

if __name__ == '__main__':
    run(main)
