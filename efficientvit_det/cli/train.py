"""``tools/train.py``: train a detector (mmdet) or segmentor (mmseg) config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--overwrite]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
from typing import List, Optional

from ..mmlab.config_options import check_config_options
from ..mmlab.datasets import check_dataset_paths
from ..mmlab.runner import build_runner, load_config, safe_checkpoint_spec
from ..mmlab.workdir import (check_run_unfinished, check_work_dir_unused, hold_work_dir,
                             newest_complete_checkpoint, remove_earlier_checkpoints)
from .common import add_cfg_options


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The arguments train and test share (as mmdet's and mmseg's own tools name them)."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    add_cfg_options(parser, 'override config keys, e.g. train_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='distributed launcher (pytorch = torchrun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def config_from_args(args):
    return load_config(args.config, args.cfg_options, args.launcher, args.work_dir,
                       args.local_rank)


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or from the latest checkpoint in the work '
                        'dir when no CKPT is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--overwrite', action='store_true',
                        help="train into a work dir that holds an earlier run's checkpoints, "
                        'replacing them')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the config's lr linearly from auto_scale_lr.base_batch_size "
                        'to the actual total batch (GPUs x batch per GPU); off by default, '
                        "as in mmdet's tools")
    add_runner_args(parser)
    return parser


def train_main(argv: Optional[List[str]] = None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            parser.error(f'{args.config} sets no auto_scale_lr.base_batch_size to scale from')
        cfg.auto_scale_lr.enable = True
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, newest_complete_checkpoint(cfg.work_dir)
        print(f'resuming from {cfg.load_from}, the newest complete checkpoint in '
              f'{cfg.work_dir}', flush=True)
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    elif not args.overwrite:
        check_work_dir_unused(cfg.work_dir)
    if cfg.get('resume') and cfg.get('load_from'):
        check_run_unfinished(cfg.load_from, cfg.train_cfg)
    if cfg.get('load_from'):  # through the allow-list loader, official layouts converted
        cfg.load_from = safe_checkpoint_spec(cfg.load_from)
    check_config_options(cfg, ('train', 'val'))
    check_dataset_paths(cfg, ('train', 'val'))
    with hold_work_dir(cfg.work_dir):  # before --overwrite removes anything
        if args.overwrite and args.resume is None:
            remove_earlier_checkpoints(cfg.work_dir)
        runner = build_runner(cfg)
        runner.train()
    return runner
