"""Convert a checkpoint to efficientvit_det's layout, validated by loading it strictly.

    python tools/convert_checkpoint.py SRC DST (--backbone NAME | --config CONFIG) [--force]

The code is ``efficientvit_det.cli.convert_checkpoint``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.convert_checkpoint import main

if __name__ == '__main__':
    run(main)
