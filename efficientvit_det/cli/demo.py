"""``tools/demo.py``, the main job out of the box, on the CPU: the demo's toy data ->
train Mask R-CNN (SHViT-S1) from scratch -> COCO evaluation -> predictions drawn on
the val images (the inference tool's code path) -> the whole detector exported to
ONNX (NMS and RoIAlign inside), checked against PyTorch and mmdet on val images,
and timed against eager PyTorch.

    python tools/demo.py [--config C] [--work-dir work_dirs/demo]
        [--data-root DIR] [--epochs N] [--score-thr T] [--seed S]
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import glob
import json
import os.path as osp
import time
from typing import List, Optional

from ..benchmark.deployment import export_check_and_time
from ..fileio import atomic_path, check_folder_ours, claim_folder
from ..mmlab.inference import build_inferencer, run_inference
from ..mmlab.scope import read_config
from ..mmlab.toy_data import DEMO_PROFILE
from ..mmlab.toy_runs import ensure_toy_coco, toy_run_options
from ..mmlab.visualize import plot_curves
from ..mmlab.workdir import newest_complete_checkpoint
from .common import at_least, format_metrics, fraction
from .train import train_main

DEFAULT_CONFIG = 'configs/toy/mask_rcnn_shvit_s1_demo.py'
#: marks a work dir as the demo's own: a later demo may replace what it holds
DEMO_MARKER = 'EFFICIENTVIT_DET_DEMO'
#: val images the export is checked on (against the graph in PyTorch and mmdet's predict)
CHECKED_IMAGES = 3


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help="an empty folder or an earlier demo's (never another run's)")
    parser.add_argument('--data-root', help="the demo toy set, generated there when absent "
                        "(default: the config's data root)")
    parser.add_argument('--epochs', type=at_least(1), help='override the schedule length')
    parser.add_argument('--score-thr', type=fraction, default=0.5,
                        help='draw detections scoring at least this (default 0.5)')
    parser.add_argument('--seed', type=int, default=0, help='training seed (default 0)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='further config overrides, passed to tools/train.py')
    return parser


def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    start = time.time()
    check_folder_ours(args.work_dir, DEMO_MARKER, 'tools/demo.py')  # before writing data
    root = (args.data_root or read_config(args.config).train_dataloader.dataset.data_root)
    root = root.rstrip('/') + '/'
    ensure_toy_coco(root, DEMO_PROFILE)
    claim_folder(args.work_dir, DEMO_MARKER, 'tools/demo.py')
    options = (toy_run_options(args.config, root, args.epochs)
               + [f'randomness.seed={args.seed}'] + args.cfg_options)
    print(f'[demo] training {args.config} on CPU (progress: iteration, loss, ETA every 10 '
          f'iterations) -> {args.work_dir}')
    # the folder is the demo's own (claimed above): a second demo replaces the first's
    train_start = time.time()
    runner = train_main([args.config, '--work-dir', args.work_dir, '--overwrite',
                         '--cfg-options', *options])
    train_minutes = (time.time() - train_start) / 60
    print('[demo] evaluating on the demo val split (COCO bbox / segm mAP) ...')
    metrics = runner.test()
    print(format_metrics(metrics))
    checkpoint = newest_complete_checkpoint(args.work_dir)
    out_dir = osp.join(args.work_dir, 'predictions')
    print(f'[demo] predicting the val images with {checkpoint} (tools/infer.py) ...')
    inference = run_inference(build_inferencer(args.config, checkpoint), osp.join(root, 'val'),
                              out_dir, score_thr=args.score_thr,
                              ann_file=f'{root}annotations/instances_val.json')
    curve = plot_curves([args.work_dir], ['loss'], osp.join(args.work_dir, 'loss_curve.png'),
                        title=f'{osp.basename(args.config)}, demo toy COCO')
    onnx_path = osp.join(args.work_dir, 'detector.onnx')
    deployment = export_check_and_time(
        args.config, checkpoint, sorted(glob.glob(osp.join(root, 'val', '*')))[:CHECKED_IMAGES],
        onnx_path)
    summary = dict(metrics, minutes=(time.time() - start) / 60, train_minutes=train_minutes,
                   seed=args.seed, **deployment)
    with atomic_path(osp.join(args.work_dir, 'demo_metrics.json')) as staged, \
            open(staged, 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'[demo] done in {summary["minutes"]:.1f} min')
    print(f'[demo] metrics:     {osp.join(args.work_dir, "demo_metrics.json")}')
    print(f'[demo] predictions: {out_dir}/vis/*.jpg (score >= {args.score_thr} drawn), '
          f'{inference["predictions"]} ({inference["detections"]} detections)')
    print(f'[demo] ONNX:        {onnx_path} (whole detector; checked against PyTorch and '
          "mmdet's predict)")
    print(f'[demo] your images: python tools/infer.py IMAGES {args.config} --weights {checkpoint}')
    print(f'[demo] loss curve:  {curve or "none (fewer iterations than the logging interval)"}')
    print(f'[demo] checkpoints: {args.work_dir}/epoch_*.pth')
    return metrics
