"""Draw the training data as the model sees it (after the training pipeline).

    python tools/analysis/browse_dataset.py CONFIG [--out-dir D] [--count N]
        [--cfg-options KEY=VALUE ...]

The code is ``efficientvit_det.cli.browse_dataset``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.browse_dataset import main

if __name__ == '__main__':
    run(main)
