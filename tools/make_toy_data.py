"""Write the built-in toy datasets where the toy configs expect them.

    python tools/make_toy_data.py [--datasets coco ade] [--coco D] [--ade D] [--seed 0]
        [--train-images N] [--val-images N]

The code is ``efficientvit_det.cli.make_toy_data``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.make_toy_data import main

if __name__ == '__main__':
    run(main)
