"""The measuring engine behind ``tools/benchmark_latency.py``.

Backbone targets need torch only; ``--config`` targets need the OpenMMLab stack.
"""
import argparse
import ast
import csv
import importlib
import json
import math
import os
import re
import resource
import shlex
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..cli import at_least
from ..fileio import atomic_path, check_writable
from .detector_graph import (DetectorGraph, as_detections, detections_agree, format_match,
                             match_detections, noise_image)
from .measure import (count_flops, flatten_outputs, machine_info, matmul_gflops,
                      max_relative_error, measure, measure_interleaved, measure_stages,
                      summarize)
from .modes import CPU_MODES, CUDA_MODES, MODES, PRECISION, Context, ModeUnavailable, work_dir

SCHEMA = 'efficientvit_det.latency/1'
ROW_FIELDS = ['target', 'kind', 'mode', 'precision', 'device', 'batch', 'height', 'width',
              'threads', 'status', 'median_ms', 'ci95_low_ms', 'ci95_high_ms', 'unstable',
              'p90_ms', 'p99_ms', 'mean_ms', 'runs',
              'throughput_img_s', 'peak_mem_mb', 'params_m', 'gmacs', 'gflops_per_s',
              'matmul_fraction', 'max_rel_err', 'backbone_share', 'reason']
#: largest error vs eager fp32 (relative to the largest output value) a mode may show
#: and still count as computing the same features; fp32 leaves room for TF32 on GPUs
TOLERANCE = {'fp32': 5e-3, 'fp16': 5e-2, 'bf16': 1e-1}


# ----------------------------------------------------------------------------- targets

def build_target(backbone: Optional[str] = None, config: Optional[str] = None,
                 whole: bool = False, checkpoint: Optional[str] = None,
                 post_processing: bool = True, cfg_options: Sequence[str] = ()):
    """(name, kind, model): our backbone name, ``timm:<name>``, or a config (its
    backbone, or with ``whole`` the whole model: a detector from image to final
    detections, NMS and mask head included (:class:`DetectorGraph`; without
    ``post_processing``, mmdet's tensor mode), a segmentor to its logits). With
    ``checkpoint`` the model gets those weights (strictly: a backbone checkpoint for
    a backbone name, a whole-model one for a config); otherwise random non-trivial
    ones (seeded: the same on every call), so that the checks of the outputs (modes
    against eager, ONNX against PyTorch) see every part of it."""
    from ..models.checking import randomize_for_checking_
    with torch.random.fork_rng(devices=[]):  # the same random weights on every call
        torch.manual_seed(0)
        name, kind, model = _build(backbone, config, whole, checkpoint, post_processing,
                                   cfg_options)
    if checkpoint is None:
        randomize_for_checking_(model)
        if isinstance(model, DetectorGraph):
            model.sharpen_random_classifier_()
    return name, kind, model.eval()


def _build(backbone, config, whole, checkpoint, post_processing, cfg_options):
    if backbone:
        if backbone.startswith('timm:'):
            import timm
            if checkpoint:
                raise ValueError('--checkpoint takes our backbones and configs, not timm:')
            name = backbone[len('timm:'):]
            return backbone, 'backbone', timm.create_model(name, features_only=True,
                                                           pretrained=False)
        from ..checkpoints import load_backbone_checkpoint
        from ..models import build_backbone
        model = build_backbone(backbone)
        if checkpoint:
            load_backbone_checkpoint(model, checkpoint)
        return backbone, 'backbone', model
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from ..checkpoints import load_model_checkpoint
    from ..registry import build_model_from_config
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(parse_cfg_options(cfg_options))
    scope = cfg.get('default_scope', 'mmdet')
    name = config_name(config)
    if not whole and not checkpoint:
        registry = importlib.import_module(f'{scope}.registry').MODELS
        backbone_cfg = dict(cfg.model.backbone)
        backbone_cfg.pop('init_cfg', None)
        with DefaultScope.overwrite_default_scope(scope):
            return f'{name}:backbone', 'backbone', registry.build(backbone_cfg)
    model = build_model_from_config(cfg)
    if checkpoint:
        load_model_checkpoint(model, checkpoint)
    if not whole:
        return f'{name}:backbone', 'backbone', model.backbone
    if scope != 'mmdet':
        return name, 'whole', _WholeModel(model)
    if post_processing:
        return name, 'whole', DetectorGraph(model)
    return name, 'whole', _WholeModel(model, importlib.import_module('mmdet.structures')
                                      .DetDataSample)


def config_name(config: str) -> str:
    """A config's rows are named by its file name (``configs/x.py`` -> ``x``)."""
    return os.path.splitext(os.path.basename(config))[0]


def parse_cfg_options(options: Sequence[str]) -> Dict[str, object]:
    """``KEY=VALUE`` strings as a dict, each value a Python literal where it reads
    as one (``300``, ``0.5``, ``[1, 2]``), else the string."""
    parsed = {}
    for option in options:
        key, separator, value = option.partition('=')
        if not separator or not key:
            raise ValueError(f'--cfg-options {option!r}: expected KEY=VALUE')
        try:
            parsed[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed[key] = value
    return parsed


def check_cfg_options(parser, args) -> None:
    """--cfg-options (of the latency and export tools) found malformed now, in one line."""
    if args.cfg_options and not args.config:
        parser.error('--cfg-options needs --config')
    try:
        parse_cfg_options(args.cfg_options)
    except ValueError as err:
        parser.error(str(err))


class _WholeModel(torch.nn.Module):
    """Segmentor (or detector, for counting its MACs) without pre- and post-processing
    (``mode='tensor'``).

    Two-stage detectors need image metadata even there (the RPN clips and
    filters proposals to the image), so detectors get one sample per image
    saying the input is the unscaled, unpadded image.
    """

    def __init__(self, model, sample_type=None):
        super().__init__()
        self.model = model
        self.sample_type = sample_type  # mmdet's DetDataSample for detectors

    def _data_samples(self, x):
        if self.sample_type is None:
            return None
        shape = tuple(x.shape[-2:])
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                    batch_input_shape=shape, scale_factor=(1.0, 1.0))
        return [self.sample_type(metainfo=meta) for _ in range(x.shape[0])]

    def forward(self, x):
        return self.model(x, self._data_samples(x), mode='tensor')

    def fuse(self):
        if hasattr(self.model.backbone, 'fuse'):
            self.model.backbone.fuse()
        return self


# ----------------------------------------------------------------------------- the grid

def valid_modes(device: str) -> List[str]:
    return CUDA_MODES if device.startswith('cuda') else CPU_MODES


#: smallest input side timed: the coarsest stride the detection configs pad to
MIN_SIDE = 32


def parse_shape(text: str):
    match = re.fullmatch(r'(\d+)(?:x(\d+))?', text)
    if not match:
        raise argparse.ArgumentTypeError(f'shape must be HxW or S, got {text!r}')
    height = int(match.group(1))
    width = int(match.group(2) or height)
    if min(height, width) < MIN_SIDE:
        raise argparse.ArgumentTypeError(f'shape {text!r}: each side must be at least '
                                         f'{MIN_SIDE} pixels')
    return height, width


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0

    def step(self):
        self.done += 1
        filled = int(20 * self.done / self.total)
        sys.stderr.write(f'\r  {self.label} [{"#" * filled}{"." * (20 - filled)}] '
                         f'{self.done}/{self.total}')
        if self.done == self.total:
            sys.stderr.write('\r' + ' ' * (len(self.label) + 40) + '\r')
        sys.stderr.flush()


def _reset_peak_memory(device: str) -> None:
    """Start a row's peak-memory window: CUDA's allocator peak, or on Linux the
    process's resident-set high-water mark (writing 5 to clear_refs resets it)."""
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:  # not Linux, or not allowed: the peak then covers the process's life
        pass


def _peak_memory_mb(device: str) -> float:
    """CUDA: peak allocated by the row; CPU: peak resident set since the reset."""
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def _eager_outputs(model, example):
    return [t.float().cpu() for t in flatten_outputs(model(example))]


def _compare(model, reference, outputs, precision: str,
             image_shape) -> Tuple[Optional[float], Optional[str]]:
    """(max relative error, why the outputs do not count as eager fp32's or None). A
    whole detector's are compared as detections, paired by label and box (modes may
    list the same detections in another order): no single relative error then."""
    if isinstance(model, DetectorGraph):
        report = match_detections(as_detections(reference), as_detections(outputs),
                                  image_shape)
        if detections_agree(report):
            return None, None
        return None, f'detections differ from eager fp32 ({format_match(report)})'
    error = max_relative_error(reference, outputs)
    if error <= TOLERANCE[precision]:
        return error, None
    return error, (f'outputs differ from eager fp32 by {error:.3g} (tolerance '
                   f'{TOLERANCE[precision]:g})' if math.isfinite(error) else
                   'outputs differ from eager fp32 in number or shape, or are inf/NaN')


def _add_stages(row, graph, example, iters, warmup, device) -> None:
    """The eager row of a whole detector gets its stages' median times (timed in
    their own runs, after the whole's) and the backbone's share of their sum: what
    swapping the backbone can buy."""
    samples = measure_stages(graph.stages(), example, iters=iters, warmup=warmup,
                             device=device)
    row['stages_ms'] = {name: round(statistics.median(times), 3)
                        for name, times in samples.items()}
    row['backbone_share'] = round(row['stages_ms']['backbone'] /
                                  sum(row['stages_ms'].values()), 3)


def format_stages(row) -> str:
    total = sum(row['stages_ms'].values())
    return '\n'.join(f"    {name:<18} {ms:>9.2f} ms {100 * ms / total:>5.1f}%"
                     for name, ms in row['stages_ms'].items()) + (
        f"\n    {'sum of stages':<18} {total:>9.2f} ms (the whole, timed as one: "
        f"{row['median_ms']:.2f} ms)")


def _example(model, batch: int, height: int, width: int) -> torch.Tensor:
    """The seeded input a row is checked and timed on (and its MACs counted on): a
    whole detector takes one image of pixels, the rest normalised batches."""
    if isinstance(model, DetectorGraph):
        return noise_image(height, width)
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))


def run_grid(targets, shapes, batches, modes, device, threads, iters, warmup,
             rounds: int = 5) -> List[Dict]:
    """Time every (target, shape, batch, mode). First each is prepared and its
    outputs checked against eager fp32 on the same input (a mode off by more than
    its precision's tolerance is reported as a mismatch and never chosen as best),
    then warmed up; then all are timed together (:func:`measure_interleaved`)."""
    rows, prepared = [], []
    combos = [(t, s, b, m) for t in targets for s in shapes for b in batches for m in modes]
    reference = {}
    checking = Progress('preparing and checking', len(combos))
    for (name, kind, model), (height, width), batch, mode in combos:
        model = model.to(device)
        example = _example(model, batch, height, width).to(device)
        precision = PRECISION.get(mode, 'fp32')
        row = dict(target=name, kind=kind, mode=mode, precision=precision,
                   device=device, batch=batch, height=height, width=width, threads=threads,
                   params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 3))
        key = (name, height, width, batch)
        try:
            if key not in reference:
                reference = {key: _eager_outputs(model, example)}  # one input's worth held
            _reset_peak_memory(device)
            run = MODES[mode](model, example, Context(device, threads, work_dir()))
            with torch.no_grad():
                outputs = flatten_outputs(run())
            error, disagreement = _compare(model, reference[key], outputs, precision,
                                           (height, width))
            measure(run, iters=0, warmup=warmup, device=device)
            row.update(status='mismatch' if disagreement else 'ok',
                       peak_mem_mb=round(_peak_memory_mb(device), 1),
                       max_rel_err=float(f'{error:.3g}') if error is not None and
                       math.isfinite(error) else None)
            if disagreement:
                row['reason'] = disagreement
            prepared.append((row, run, model, example))
        except ModeUnavailable as err:
            row.update(status='skipped', reason=str(err))
        rows.append(row)
        checking.step()
    rounds = min(rounds, iters)
    timing = Progress(f'timing {len(prepared)} rows in {rounds} interleaved rounds',
                      (iters + rounds) * len(prepared))
    samples = measure_interleaved([run for _, run, _, _ in prepared], iters, rounds,
                                  device=device, after_each=timing.step)
    for times, (row, _, model, example) in zip(samples, prepared):
        stats = summarize(times)
        row.update(**{k: v if isinstance(v, bool) else round(v, 3) for k, v in stats.items()},
                   throughput_img_s=round(row['batch'] * 1e3 / stats['median_ms'], 2))
        if row['mode'] == 'eager' and isinstance(model, DetectorGraph):
            _add_stages(row, model, example, iters, warmup, device)
    for row in rows:
        print(format_row(row), flush=True)
        if 'stages_ms' in row:
            print(format_stages(row), flush=True)
    _add_flops(rows, targets, device)
    return rows


def _add_flops(rows, targets, device):
    cache = {}
    for row in rows:
        key = (row['target'], row['batch'], row['height'], row['width'])
        if key not in cache:
            model = next(m for n, _, m in targets if n == row['target'])
            x = _example(model, 1, row['height'], row['width']).to(device)
            cache[key] = round(count_flops(model, x) / 1e9, 3)
        row['gmacs'] = cache[key]  # per image


def add_efficiency(rows, roof_gflops: Dict[str, float]) -> None:
    """Achieved GFLOP/s (2 x MACs per image x images / s) and its share of the
    device's matmul throughput in the row's precision, measured in the same run."""
    for row in rows:
        if row.get('throughput_img_s'):
            achieved = 2 * row['gmacs'] * row['throughput_img_s']
            row['gflops_per_s'] = round(achieved, 1)
            row['matmul_fraction'] = round(achieved / roof_gflops[row['precision']], 3)


def matmul_roofs(rows, device: str) -> Dict[str, float]:
    """Matmul GFLOP/s for fp32 and for every other precision the rows timed."""
    dtypes = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
    wanted = {'fp32'} | {r['precision'] for r in rows if r.get('throughput_img_s')}
    return {p: matmul_gflops(device=device, dtype=dtypes[p]) for p in sorted(wanted)}


def mark_best(rows) -> Dict[str, Dict]:
    """Fastest successful mode per (target, shape, batch). An unstable row (its
    median's interval too wide to trust) competes only when its whole interval lies
    below the fastest stable median, or when every row is unstable."""
    groups = {}
    for row in rows:
        if row['status'] == 'ok':
            key = f"{row['target']} {row['height']}x{row['width']} b{row['batch']}"
            groups.setdefault(key, []).append(row)
    best = {}
    for key, group in groups.items():
        stable = [r for r in group if not r.get('unstable')]
        bar = min((r['median_ms'] for r in stable), default=math.inf)
        candidates = stable + [r for r in group if r.get('unstable') and
                               r.get('ci95_high_ms', math.inf) < bar] or group
        best[key] = min(candidates, key=lambda r: r['median_ms'])
    for row in rows:
        row['best'] = any(row is b for b in best.values())
    return best


# ----------------------------------------------------------------------------- output

HEADER = (f"{'target':<22} {'shape':>9} {'b':>3} {'mode':<13} {'prec':<4} {'median':>8} "
          f"{'p90':>8} {'p99':>8} {'img/s':>8} {'mem MB':>7}")


def _number(value, width: int, digits: int) -> str:
    """A right-aligned number, or a dash for a figure the source does not give
    (trtexec reports no memory, older trtexec no p90)."""
    return f'{value:{width}.{digits}f}' if value is not None else f'{"—":>{width}}'


def format_row(row) -> str:
    shape = f"{row['height']}x{row['width']}"
    head = (f"{row['target']:<22} {shape:>9} {row['batch']:>3} {row['mode']:<13} "
            f"{row['precision']:<4} ")
    if row['status'] == 'skipped':
        return head + f"skipped: {row['reason']}"
    return (head + ' '.join([_number(row['median_ms'], 8, 2), _number(row['p90_ms'], 8, 2),
                             _number(row['p99_ms'], 8, 2),
                             _number(row['throughput_img_s'], 8, 1),
                             _number(row['peak_mem_mb'], 7, 0)])
            + (f"  MISMATCH: {row['reason']}" if row['status'] == 'mismatch' else '')
            + ('  UNSTABLE: 95% interval of the median '
               f"{row['ci95_low_ms']:.2f}-{row['ci95_high_ms']:.2f} ms"
               if row.get('unstable') else ''))


def versions() -> Dict[str, str]:
    found = {'torch': torch.__version__}
    for module in ('timm', 'onnx', 'onnxruntime', 'tensorrt', 'mmcv', 'mmdet', 'mmseg'):
        try:
            found[module] = __import__(module).__version__
        except Exception:  # not installed (or broken): simply not reported
            pass
    return found


def write_results(rows, out: str, device: str, command: str, extra: Optional[dict] = None):
    """``out`` without extension (or ending in .json): writes .json and .csv."""
    base = result_base(out)
    document = dict(schema=SCHEMA, command=command, time=time.strftime('%Y-%m-%d %H:%M:%S'),
                    machine=machine_info(device), versions=versions(), results=rows)
    document.update(extra or {})
    with atomic_path(base + '.json') as partial, open(partial, 'w') as f:
        json.dump(document, f, indent=2)
    with atomic_path(base + '.csv') as partial, open(partial, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS + ['best'], extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    return base + '.json', base + '.csv'


def result_base(out: str) -> str:
    return out[:-5] if out.endswith('.json') else out


# ----------------------------------------------------------------------------- CLI

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
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='with --config: override config keys (of every config '
                        'given), e.g. a deployment test_cfg: model.test_cfg.rpn.max_per_img=300')
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
    check_cfg_options(parser, args)
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
        if any(isinstance(m, DetectorGraph) for _, _, m in targets) and args.batch != [1]:
            parser.error('--whole: a detector takes one image at a time; leave --batch out '
                         '(or --batch 1)')
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
