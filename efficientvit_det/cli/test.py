"""``tools/test.py``: evaluate a checkpoint, COCO bbox/segm mAP (mmdet) or mIoU (mmseg).

    python tools/test.py CONFIG CHECKPOINT [--out FILE] [--show-dir DIR] [--work-dir DIR]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os.path as osp
from typing import List, Optional

from ..mmlab.config_options import check_config_options
from ..mmlab.datasets import check_dataset_paths, check_outputs_outside_dataset
from ..mmlab.runner import build_runner, load_into_runner
from ..mmlab.scope import config_scope
from .common import format_metrics
from .train import add_runner_args, config_from_args


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description='Evaluate a detector (COCO mAP) or a '
                                     'segmentor (mIoU) checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='detection: dump predictions to this .pkl; '
                        'segmentation: write predicted label maps into this folder')
    parser.add_argument('--show-dir', help='save images with drawn predictions here')
    add_runner_args(parser)
    return parser


def test_main(argv: Optional[List[str]] = None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    cfg.load_from = None  # loaded below, strictly, in either layout
    scope = config_scope(cfg)
    if args.out and scope == 'mmdet' and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl file for detection, got {args.out}')
    if args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw = True
        if scope == 'mmdet':
            hook.test_out_dir = osp.abspath(args.show_dir)
        else:
            hook.interval = 1
            cfg.visualizer.save_dir = osp.abspath(args.show_dir)
    if args.out:
        if scope == 'mmdet':
            evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
                else [cfg.test_evaluator]
            cfg.test_evaluator = evaluators + [dict(type='DumpDetResults',
                                                    out_file_path=args.out)]
        else:
            cfg.test_evaluator.update(output_dir=args.out)
    check_config_options(cfg, ('test',))
    check_dataset_paths(cfg, ('test',))
    check_outputs_outside_dataset(cfg, 'test', {'--show-dir': args.show_dir, '--out': args.out})
    runner = build_runner(cfg)
    load_into_runner(runner, args.checkpoint)
    metrics = runner.test()
    print(format_metrics(metrics))
    return metrics
