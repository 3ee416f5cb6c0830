"""Timing primitives: warm-up, then timed iterations (CUDA events on GPU)."""
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch


def summarize(samples_ms: List[float]) -> Dict[str, float]:
    ordered = sorted(samples_ms)

    def quantile(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
    return dict(median_ms=statistics.median(ordered), p90_ms=quantile(0.9),
                p99_ms=quantile(0.99), mean_ms=statistics.fmean(ordered), runs=len(ordered))


@torch.no_grad()
def measure(fn: Callable[[], object], iters: int = 30, warmup: int = 5,
            device: str = 'cpu') -> List[float]:
    """Per-call latency in milliseconds of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
    return samples


@torch.no_grad()
def matmul_gflops(size: int = 2048, device: str = 'cpu', iters: int = 10) -> float:
    """This machine's fp32 matrix-multiply throughput: the compute roof a backbone
    (mostly 1x1 convolutions, i.e. matmuls) can approach."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    samples = measure(lambda: a @ b, iters=iters, warmup=2, device=device)
    return 2 * size ** 3 / (statistics.median(samples) / 1e3) / 1e9


@torch.no_grad()
def count_flops(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward (torch's FLOP counter counts 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model(example)
    return counter.get_total_flops() // 2


def machine_info(device: str = 'cpu') -> Dict[str, object]:
    info = dict(python=sys.version.split()[0], torch=torch.__version__,
                platform=platform.platform(), processor=platform.processor() or platform.machine(),
                threads=torch.get_num_threads())
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        if names:
            info['cpu'] = f'{names[0]} x{len(names)}'
    except OSError:
        pass
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
        info['cuda'] = torch.version.cuda
    return info
