"""The timing grid behind ``tools/benchmark_latency.py``: every (target, shape,
batch, mode) prepared and checked against eager fp32, then timed together in
interleaved rounds, with FLOPs, memory and the share of the device's matmul
throughput (torch only: backbones are timed where mmcv / mmdet are not installed).
"""
import math
import resource
import statistics
import sys
from typing import Dict, List

import torch

from ..deploy.outputs import flatten_outputs
from ..errors import ModeUnavailable
from .measure import (count_flops, matmul_gflops, measure, measure_interleaved, measure_stages,
                      summarize)
from .modes import CPU_MODES, CUDA_MODES, MODES, PRECISION, Context, work_dir
from .report import format_row, format_stages


def valid_modes(device: str) -> List[str]:
    return CUDA_MODES if device.startswith('cuda') else CPU_MODES


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


def _add_stages(row, stages, example, iters, warmup, device) -> None:
    """The eager row of a target with stages (a whole detector) gets their median
    times (timed in their own runs, after the whole's) and the backbone's share of
    their sum: what swapping the backbone can buy."""
    samples = measure_stages(stages, example, iters=iters, warmup=warmup, device=device)
    row['stages_ms'] = {name: round(statistics.median(times), 3)
                        for name, times in samples.items()}
    row['backbone_share'] = round(row['stages_ms']['backbone'] /
                                  sum(row['stages_ms'].values()), 3)


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
    for target, (height, width), batch, mode in combos:
        target.model.to(device)
        example = target.example(batch, height, width).to(device)
        precision = PRECISION.get(mode, 'fp32')
        row = dict(target=target.name, kind=target.kind, mode=mode, precision=precision,
                   device=device, batch=batch, height=height, width=width, threads=threads,
                   params_m=round(sum(p.numel() for p in target.model.parameters()) / 1e6, 3))
        key = (target.name, height, width, batch)
        try:
            if key not in reference:  # one input's worth held
                reference = {key: _eager_outputs(target.model, example)}
            _reset_peak_memory(device)
            run = MODES[mode](target, example, Context(device, threads, work_dir()))
            with torch.no_grad():
                outputs = flatten_outputs(run())
            error, disagreement = target.disagreement(reference[key], outputs, precision,
                                                      (height, width))
            measure(run, iters=0, warmup=warmup, device=device)
            row.update(status='mismatch' if disagreement else 'ok',
                       peak_mem_mb=round(_peak_memory_mb(device), 1),
                       max_rel_err=float(f'{error:.3g}') if error is not None and
                       math.isfinite(error) else None)
            if disagreement:
                row['reason'] = disagreement
            prepared.append((row, run, target, example))
        except ModeUnavailable as err:
            row.update(status='skipped', reason=str(err))
        rows.append(row)
        checking.step()
    rounds = min(rounds, iters)
    timing = Progress(f'timing {len(prepared)} rows in {rounds} interleaved rounds',
                      (iters + rounds) * len(prepared))
    samples = measure_interleaved([run for _, run, _, _ in prepared], iters, rounds,
                                  device=device, after_each=timing.step)
    for times, (row, _, target, example) in zip(samples, prepared):
        stats = summarize(times)
        row.update(**{k: v if isinstance(v, bool) else round(v, 3) for k, v in stats.items()},
                   throughput_img_s=round(row['batch'] * 1e3 / stats['median_ms'], 2))
        if row['mode'] == 'eager' and target.stages():
            _add_stages(row, target.stages(), example, iters, warmup, device)
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
            target = next(t for t in targets if t.name == row['target'])
            x = target.example(1, row['height'], row['width']).to(device)
            cache[key] = round(count_flops(target.model, x) / 1e9, 3)
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
