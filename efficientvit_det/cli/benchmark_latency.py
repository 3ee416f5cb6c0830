"""``tools/benchmark_latency.py``: backbone (or whole model) latency on CPU / GPU in
several modes side by side.

    python tools/benchmark_latency.py --backbone shvit_s4 timm:resnet50 --shape 512x512 \\
        --batch 1 --device cpu --threads 2 --mode eager fused channels_last compile onnxruntime \\
        --out benchmarks/results/cpu
    python tools/benchmark_latency.py --config configs/mask_rcnn_shvit_s4.py [--whole] \\
        [--cfg-options model.test_cfg.rpn.max_per_img=300] ...
    python tools/benchmark_latency.py --backbone shvit_s4 --mode best

Backbone mode runs where only torch is installed (no mmcv / mmdet). --whole times a detector from
image to final detections, with per-stage times in its eager row.
"""
import argparse
import re
import shlex
import sys
from typing import List, Optional

import torch

from ..benchmark.grid import add_efficiency, mark_best, matmul_roofs, run_grid, valid_modes
from ..benchmark.modes import MODES
from ..benchmark.report import HEADER, result_base, write_results
from ..deploy.targets import build_target, config_name
from ..fileio import check_writable
from .common import add_cfg_options, at_least, parse_shape


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Backbone / model latency: median, p90, p99, throughput, memory, FLOPs.')
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--backbone', nargs='+', help='our backbone names (shvit_s4, ...) '
                        'or timm references as timm:<name> (e.g. timm:resnet50)')
    target.add_argument('--config', nargs='+',
                        help='take the backbone out of detector / segmentor configs (needs '
                        'mmdet / mmseg); several configs are timed in the same interleaved '
                        'rounds, so their ratios hold on a busy machine')
    parser.add_argument('--whole', action='store_true',
                        help='with --config: time the whole model; a detector from image '
                        'to final detections (normalisation, NMS, RoI and mask heads '
                        'included; one image), a segmentor to its logits')
    add_cfg_options(parser, 'with --config: override config keys (of every config given), '
                    'e.g. a deployment test_cfg: model.test_cfg.rpn.max_per_img=300')
    parser.add_argument('--checkpoint',
                        help='check and time these weights (a backbone checkpoint with one '
                        '--backbone, a whole-model one with --config; path, URL or '
                        'release:); default: random non-trivial weights')
    parser.add_argument('--shape', nargs='+', type=parse_shape,
                        help='input sizes HxW (or S for SxS); several allowed (default 512)')
    parser.add_argument('--batch', nargs='+', type=at_least(1), help='default 1')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--threads', type=at_least(1), default=None,
                        help='CPU threads (default: torch default)')
    parser.add_argument('--mode', nargs='+',
                        help=f'any of {sorted(MODES)}, "all" (every mode valid for the '
                        'device) or "best" (all, then report the fastest); default eager')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS), default='latency',
                        help='latency: batch 1 per image (what a detector pays); paper: '
                        "the papers' throughput settings (GPU: batch 256, fp16 autocast, "
                        'BN folded; CPU: batch 16, 1 thread, BN folded and traced; 224x224)')
    parser.add_argument('--iters', type=at_least(1), default=30)
    parser.add_argument('--warmup', type=at_least(0), default=5)
    parser.add_argument('--rounds', type=at_least(1), default=5,
                        help='interleaved rounds the timed runs are spread over (each '
                        'row: one untimed call, then its share of --iters, per round)')
    parser.add_argument('--out', help='write OUT.json and OUT.csv')
    return parser


#: settings of each protocol, by device kind; the paper protocol's are the papers'
#: throughput measurements (SHViT, EfficientViT, UniForm): large batches, fp16 on GPUs
_BATCH_ONE = dict(shape=[(512, 512)], batch=[1], mode=['eager'])


PROTOCOLS = {
    'latency': {'cpu': _BATCH_ONE, 'cuda': _BATCH_ONE},
    'paper': {'cpu': dict(shape=[(224, 224)], batch=[16], mode=['torchscript'], threads=1),
              'cuda': dict(shape=[(224, 224)], batch=[256], mode=['fp16'])},
}


def apply_protocol(parser, args) -> None:
    """Fill the settings left out from the protocol; the paper protocol refuses
    settings that would make its numbers something else than the papers'."""
    settings = PROTOCOLS[args.protocol]['cuda' if args.device.startswith('cuda') else 'cpu']
    for name, value in settings.items():
        given = getattr(args, name)
        if given is not None and args.protocol == 'paper' and name != 'shape':
            parser.error(f'--protocol paper sets --{name} to {value} on this device; '
                         f'leave --{name} out (or use --protocol latency)')
        if given is None:
            setattr(args, name, value)


def check_args(parser, args):
    if not re.fullmatch(r'cpu|cuda(:\d+)?', args.device):
        parser.error(f'unknown device {args.device!r}; valid: cpu, cuda, cuda:N')
    apply_protocol(parser, args)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available on this machine '
                     '(torch.cuda.is_available() is False); use --device cpu')
    requested = args.mode
    if any(m in ('all', 'best') for m in requested):
        requested = valid_modes(args.device)
    unknown = [m for m in requested if m not in MODES]
    if unknown:
        parser.error(f'unknown mode(s) {unknown}; valid: {sorted(MODES)} or all / best')
    if args.whole and not args.config:
        parser.error('--whole needs --config')
    if args.cfg_options and not args.config:
        parser.error('--cfg-options needs --config')
    if args.checkpoint and args.backbone and (len(args.backbone) > 1 or
                                              args.backbone[0].startswith('timm:')):
        parser.error('--checkpoint needs one of our backbones (or --config)')
    if args.checkpoint and args.config and len(args.config) > 1:
        parser.error('--checkpoint fits one model: give one --config with it')
    if args.config:
        names = [config_name(c) for c in args.config]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            parser.error(f'--config: rows are named by file name, and {repeated} '
                         'comes twice; rename one of the files')
    if args.out:  # found out now, not after the whole benchmark
        base = result_base(args.out)
        try:
            for path in (base + '.json', base + '.csv'):
                check_writable(path)
        except OSError as err:
            parser.error(f'--out {args.out}: {err}')
    return requested


def main(argv: Optional[List[str]] = None):
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = check_args(parser, args)
    previous_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(parser, args, modes, argv)
    finally:  # called as a library (tests, benchmarks), it leaves the process as it was
        torch.set_num_threads(previous_threads)


def _run(parser, args, modes, argv):
    threads = torch.get_num_threads()
    if args.backbone:
        targets = [build_target(backbone=name, checkpoint=args.checkpoint)
                   for name in args.backbone]
    else:
        targets = [build_target(config=config, whole=args.whole, checkpoint=args.checkpoint,
                                cfg_options=args.cfg_options) for config in args.config]
        if not all(t.takes_batches for t in targets) and args.batch != [1]:
            parser.error('--whole: a detector takes one image at a time; leave --batch out '
                         '(or --batch 1)')
    for target in targets:  # a size that cannot fit: refused before any row runs
        for height, width in args.shape:
            target.check_fits(max(args.batch), height, width, args.device)
    invocation = sys.argv[1:] if argv is None else list(argv)
    command = ' '.join(shlex.quote(a) for a in
                       ['python', 'tools/benchmark_latency.py'] + invocation)
    print(f'device {args.device}, {threads} threads, warm-up {args.warmup}, {args.iters} timed '
          f'runs per row (ms; GMACs per image)')
    if args.protocol == 'paper':
        print(f"the papers' protocol (batch {args.batch[0]}, {', '.join(modes)}): compare "
              "img/s with the papers' throughput; ms are per batch, not a detector's "
              'per-image latency')
    print(HEADER)
    rows = run_grid(targets, args.shape, args.batch, modes, args.device, threads,
                    args.iters, args.warmup, args.rounds)
    roofs = matmul_roofs(rows, args.device)
    add_efficiency(rows, roofs)
    print('2048^3 matmul on this device: ' +
          ', '.join(f'{p} {g:.0f} GFLOP/s' for p, g in roofs.items()))
    best = mark_best(rows)
    if len(modes) > 1:
        for key, row in best.items():
            print(f'best for {key}: {row["mode"]} ({row["median_ms"]:.2f} ms, '
                  f'{row["gmacs"]:.2f} GMACs/img, {100 * row["matmul_fraction"]:.0f}% of '
                  f'{row["precision"]} matmul throughput)')
    if args.out:
        paths = write_results(rows, args.out, args.device, command,
                              extra=dict(protocol=args.protocol,
                                         matmul_gflops=round(roofs['fp32'], 1),
                                         matmul_gflops_by_precision={
                                             p: round(g, 1) for p, g in roofs.items()}))
        print(f'wrote {paths[0]} and {paths[1]}')
    return rows
