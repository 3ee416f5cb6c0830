"""Parameters and multiply-accumulates of a whole detector / segmentor, per part.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]]

Counts one forward of one image at H x W (default 800 x 1333 for detectors,
512 x 512 for segmentors); prints part | params (M) | GMACs | share of the total.
Counted as mmdet's tensor mode runs: a two-stage box head on every proposal the RPN
keeps at test time (1000), the mask head on the first 100; custom ops (RoIAlign,
NMS) count no MACs.
"""
import argparse

from efficientvit_det.cli import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='H W, or one size for a square image')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from efficientvit_det.analysis import format_complexity, model_complexity
    if args.shape is None:
        segmentor = Config.fromfile(args.config).get('default_scope') == 'mmseg'
        args.shape = [512, 512] if segmentor else [800, 1333]
    if len(args.shape) not in (1, 2) or min(args.shape) < 32:
        parser.error(f'--shape takes H W or one size, each at least 32; got {args.shape}')
    height, width = args.shape * 2 if len(args.shape) == 1 else args.shape
    rows = model_complexity(args.config, height, width)
    print(f'{args.config} at {height}x{width}:')
    print(format_complexity(rows))
    return rows


if __name__ == '__main__':
    run(main)
