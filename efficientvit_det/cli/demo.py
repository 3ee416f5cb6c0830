"""``tools/demo.py``, the main job out of the box: toy data -> train Mask R-CNN
(SHViT-S1) on CPU -> COCO evaluation -> predictions on the val images through the
inference tool's code path (drawn images + COCO results JSON) and a loss curve.

    python tools/demo.py [--config C] [--work-dir work_dirs/demo] [--data-root D]
        [--epochs N] [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os.path as osp
import time
from typing import List, Optional

from ..mmlab.inference import build_inferencer, run_inference
from ..mmlab.toy_runs import ensure_toy_coco, toy_run_options
from ..mmlab.visualize import plot_curves
from ..mmlab.workdir import newest_complete_checkpoint
from .common import at_least, format_metrics
from .train import train_main

DEFAULT_CONFIG = 'configs/toy/mask_rcnn_shvit_s1_toy.py'


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/toy_coco')
    parser.add_argument('--epochs', type=at_least(1), help='override the toy schedule length')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='further config overrides, passed to tools/train.py')
    return parser


def main(argv: Optional[List[str]] = None):
    parser = build_parser()
    args = parser.parse_args(argv)
    start = time.time()
    ensure_toy_coco(args.data_root)
    root = args.data_root.rstrip('/') + '/'
    options = toy_run_options(args.config, root, args.epochs) + args.cfg_options
    print(f'[demo] training {args.config} on CPU (progress: iteration, loss, ETA every 10 '
          f'iterations) -> {args.work_dir}')
    # the demo's own folder: a second demo replaces the first one's results
    runner = train_main([args.config, '--work-dir', args.work_dir, '--overwrite',
                         '--cfg-options', *options])
    print('[demo] evaluating on the toy val split (COCO bbox / segm mAP) ...')
    metrics = runner.test()
    print(format_metrics(metrics))
    checkpoint = newest_complete_checkpoint(args.work_dir)
    out_dir = osp.join(args.work_dir, 'predictions')
    print(f'[demo] predicting the toy val images with {checkpoint} (tools/infer.py) ...')
    inference = run_inference(build_inferencer(args.config, checkpoint), osp.join(root, 'val'),
                              out_dir, ann_file=f'{root}annotations/instances_val.json')
    curve = plot_curves([args.work_dir], ['loss'], osp.join(args.work_dir, 'loss_curve.png'),
                        title=f'{osp.basename(args.config)}, toy COCO')
    with open(osp.join(args.work_dir, 'demo_metrics.json'), 'w') as f:
        json.dump(dict(metrics, minutes=(time.time() - start) / 60), f, indent=2)
    print(f'[demo] done in {(time.time() - start) / 60:.1f} min')
    print(f'[demo] metrics:     {osp.join(args.work_dir, "demo_metrics.json")}')
    print(f'[demo] predictions: {out_dir}/vis/*.jpg (score >= 0.3 drawn), '
          f'{inference["predictions"]} ({inference["detections"]} detections)')
    print(f'[demo] your images: python tools/infer.py IMAGES {args.config} --weights {checkpoint}')
    print(f'[demo] loss curve:  {curve or "none (fewer iterations than the logging interval)"}')
    print(f'[demo] checkpoints: {args.work_dir}/epoch_*.pth')
    return metrics
