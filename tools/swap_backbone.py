"""Any of our backbones, or a timm model, in place of the backbone of an mmdet /
mmseg model config.

    python tools/swap_backbone.py BASE_CONFIG --backbone NAME --out NEW_CONFIG
        [--weights CKPT|release:NAME|none] [--check] [--force]

The code is ``efficientvit_det.cli.swap_backbone``.
"""
from efficientvit_det.cli.common import run
from efficientvit_det.cli.swap_backbone import main

if __name__ == '__main__':
    run(main)
