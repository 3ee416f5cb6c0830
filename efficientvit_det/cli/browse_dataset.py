"""``tools/analysis/browse_dataset.py``: draw the training data as the model sees it:
ground-truth boxes, masks or label
maps over the images after the training pipeline (resize, flip, crop ...).

    python tools/analysis/browse_dataset.py CONFIG [--out-dir D] [--count N]
        [--cfg-options KEY=VALUE ...]
"""
import argparse

from .common import add_cfg_options, at_least


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--out-dir', default='browse_dataset')
    parser.add_argument('--count', type=at_least(1), default=8,
                        help='samples to draw (default 8)')
    add_cfg_options(parser, 'override config keys, e.g. train_dataloader.dataset.data_root=D')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..mmlab.visualize import browse_dataset
    written = browse_dataset(args.config, args.out_dir, args.count, args.cfg_options)
    print(f'{len(written)} training sample(s) drawn -> {args.out_dir}')
    return written
