"""Parameters and multiply-accumulates of a whole detector / segmentor, per part.

    python tools/analysis/get_flops.py CONFIG [--shape HxW]

The code is ``efficientvit_det.cli.get_flops``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.get_flops import main

if __name__ == '__main__':
    run(main)
