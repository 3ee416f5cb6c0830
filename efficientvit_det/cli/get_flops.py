"""``tools/analysis/get_flops.py``: parameters and multiply-accumulates of a whole detector
/ segmentor, per part.

    python tools/analysis/get_flops.py CONFIG [--shape HxW]

Counts one forward of one image at HxW (default 800 x 1333 for detectors,
512 x 512 for segmentors); prints part | params (M) | GMACs | share of the total.
Counted as mmdet's tensor mode runs: a two-stage box head on every proposal the RPN
keeps at test time (1000), the mask head on the first 100; custom ops (RoIAlign,
NMS) count no MACs.
"""
import argparse

from .common import parse_shape


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--shape', nargs='+', metavar='HxW',
                        help='HxW, or S for a square image')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    from ..benchmark.complexity import format_complexity, model_complexity
    from ..mmlab.scope import config_scope, read_config
    if args.shape is None:
        segmentor = config_scope(read_config(args.config)) == 'mmseg'
        height, width = (512, 512) if segmentor else (800, 1333)
    else:
        height, width = shape_argument(parser, args.shape)
    rows = model_complexity(args.config, height, width)
    print(f'{args.config} at {height}x{width}:')
    print(format_complexity(rows))
    return rows


def shape_argument(parser, values):
    """``--shape HxW`` (or S); the older ``--shape H W`` is still read, with a note."""
    if len(values) == 2 and all(v.isdigit() for v in values):
        print(f'note: --shape {values[0]} {values[1]} is read as --shape '
              f'{values[0]}x{values[1]}, the form every tool takes')
        values = [f'{values[0]}x{values[1]}']
    if len(values) != 1:
        parser.error(f'--shape takes one HxW (or S), got {" ".join(values)}')
    try:
        return parse_shape(values[0])
    except argparse.ArgumentTypeError as err:
        parser.error(f'--shape: {err}')
