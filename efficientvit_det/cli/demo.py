"""``tools/demo.py``, the main job out of the box, on the CPU: the demo's toy data ->
train Mask R-CNN (SHViT-S1) from scratch -> COCO evaluation -> predictions drawn on
the val images (the inference tool's code path) -> the whole detector exported to
ONNX (NMS and RoIAlign inside), checked against PyTorch and mmdet on val images,
and timed against eager PyTorch.

    python tools/demo.py [--config C] [--work-dir work_dirs/demo]
        [--data-root data/toy_coco_demo] [--epochs N] [--score-thr T] [--seed S]
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import glob
import json
import os.path as osp
import time
from typing import List, Optional

import torch

from ..benchmark.grid import run_grid
from ..deploy.detector_graph import image_input
from ..deploy.onnx_export import describe, export_checked
from ..deploy.targets import build_target
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
    parser.add_argument('--data-root', default='data/toy_coco_demo',
                        help='the demo toy set, generated there when absent')
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
    ensure_toy_coco(args.data_root, DEMO_PROFILE)
    claim_folder(args.work_dir, DEMO_MARKER, 'tools/demo.py')
    root = args.data_root.rstrip('/') + '/'
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
    deployment = deploy(args.config, checkpoint, sorted(glob.glob(osp.join(root, 'val', '*'))),
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


def deploy(config: str, checkpoint: str, val_images: List[str], out: str) -> dict:
    """Export the trained whole detector (BatchNorms folded, as deployed) to ``out``,
    check it on val images against the graph in PyTorch and mmdet's ``predict``, and
    time eager PyTorch against ONNX Runtime on one of them, side by side; returns
    what it found. A mismatch ends the demo (ExportMismatch) with the file set aside."""
    width, height = read_config(config).toy_image_scale
    print(f'[demo] exporting the whole detector to ONNX at {height}x{width} and checking '
          f'it on {CHECKED_IMAGES} val images ...')
    target = build_target(config=config, whole=True, checkpoint=checkpoint).fuse()
    images = [image_input(path, height, width) for path in val_images[:CHECKED_IMAGES]]
    reports = export_checked(target, images, out, trained=True)
    print('\n'.join(describe(report) for report in reports))
    target.image = images[0]
    print('[demo] timing eager PyTorch and ONNX Runtime on one val image (ms per image):')
    rows = run_grid([target], [(height, width)], [1], ['eager', 'onnxruntime'], 'cpu',
                    threads=torch.get_num_threads(), iters=20, warmup=3)
    return dict(onnx=out, onnx_checked_images=len(images),
                latency_ms={row['mode']: row.get('median_ms') for row in rows})
