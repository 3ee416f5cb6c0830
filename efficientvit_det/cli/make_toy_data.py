"""``tools/make_toy_data.py``: write the built-in toy datasets where the toy configs expect them.

    python tools/make_toy_data.py [--datasets coco ade] [--coco data/toy_coco]
        [--ade data/toy_ade] [--profile benchmark|demo] [--seed 0] [--train-images N]
        [--val-images N]

``--profile`` picks the COCO set: ``benchmark`` (small shapes, up to four per image;
the toy configs, tests and benchmarks) or ``demo`` (larger shapes, one to three per
image; ``tools/demo.py``, which writes it to data/toy_coco_demo by itself). A folder
is written only when it is empty or holds the generator's own earlier output.

``--val-images`` makes a larger val split for steadier benchmark scores: its first
images are the default split's (each split has its own random stream), the rest
come from the same generator; likewise ``--train-images``.
"""
import argparse

from ..mmlab.toy_data import (COCO_TOY_PROFILES, TOY_ADE_TRAIN_IMAGES, TOY_ADE_VAL_IMAGES,
                              make_ade_toy, make_coco_toy)
from .common import at_least


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--datasets', nargs='+', choices=('coco', 'ade'), default=('coco', 'ade'),
                        help='which to write (default both)')
    parser.add_argument('--coco', default='data/toy_coco')
    parser.add_argument('--ade', default='data/toy_ade')
    parser.add_argument('--profile', choices=sorted(COCO_TOY_PROFILES), default='benchmark',
                        help='which COCO toy set (default benchmark)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-images', type=at_least(1),
                        help="training images of each dataset (default: the COCO profile's; "
                        f'{TOY_ADE_TRAIN_IMAGES} ADE20K)')
    parser.add_argument('--val-images', type=at_least(1),
                        help="val images of each dataset (default: the COCO profile's; "
                        f'{TOY_ADE_VAL_IMAGES} ADE20K)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = {key: count for key, count in (('num_train', args.train_images),
                                           ('num_val', args.val_images)) if count is not None}
    if 'coco' in args.datasets:
        paths = make_coco_toy(args.coco, seed=args.seed, profile=COCO_TOY_PROFILES[args.profile],
                              **sizes)
        print(f'COCO-format toy dataset: {args.coco} ({paths["train"]}, {paths["val"]})')
    if 'ade' in args.datasets:
        make_ade_toy(args.ade, seed=args.seed, **sizes)
        print(f'ADE20K-format toy dataset: {args.ade}')
