"""``tools/analysis/plot_logs.py``: training curves of one or several runs in one PNG (a
panel per key, a line per
run), from mmengine's vis_data/scalars.json in each work dir.

    python tools/analysis/plot_logs.py WORK_DIR [WORK_DIR ...] [--keys loss coco/bbox_mAP]
        [--out curves.png]
"""
import argparse


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--keys', nargs='+', default=['loss', 'coco/bbox_mAP', 'mIoU'],
                        help='logged keys to plot (default: loss, coco/bbox_mAP, mIoU; '
                        'keys no run logged are left out)')
    parser.add_argument('--out', default='curves.png')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..mmlab.visualize import plot_curves
    try:
        out = plot_curves(args.work_dirs, args.keys, args.out)
    except FileNotFoundError as err:
        parser.error(str(err))
    if out is None:
        parser.error(f'none of the runs logged any of {args.keys}')
    print(f'{", ".join(args.keys)} of {len(args.work_dirs)} run(s) -> {out}')
    return out
