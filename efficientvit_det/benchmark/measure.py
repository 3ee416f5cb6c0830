"""Timing primitives: warm-up, then timed iterations (CUDA events on GPU)."""
import math
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch


#: a row whose median's 95% interval is wider than this share of the median is
#: marked unstable: the machine was too noisy for its number to be trusted
UNSTABLE_SPREAD = 0.10


def median_interval(ordered: List[float], confidence: float = 0.95) -> Tuple[float, float]:
    """Distribution-free interval for the median of sorted samples: order statistics
    k and n-1-k cover it unless at most k samples fall on one side of it, which has
    probability 2 P(B <= k), B ~ Binomial(n, 1/2); k is the largest keeping that
    under 1 - ``confidence``. Fewer than 6 samples cannot reach 95%: the whole range."""
    n = len(ordered)
    k, at_most_k = 0, 1 / 2 ** n  # P(B <= 0)
    while k + 1 <= (n - 1) // 2:
        at_most_next = at_most_k + math.comb(n, k + 1) / 2 ** n
        if 1 - 2 * at_most_next < confidence:
            break
        k, at_most_k = k + 1, at_most_next
    return ordered[k], ordered[n - 1 - k]


def summarize(samples_ms: List[float]) -> Dict[str, object]:
    ordered = sorted(samples_ms)

    def quantile(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
    median = statistics.median(ordered)
    low, high = median_interval(ordered)
    return dict(median_ms=median, ci95_low_ms=low, ci95_high_ms=high,
                unstable=(high - low) > UNSTABLE_SPREAD * median, p90_ms=quantile(0.9),
                p99_ms=quantile(0.99), mean_ms=statistics.fmean(ordered), runs=len(ordered))


@torch.no_grad()
def measure(fn: Callable[[], object], iters: int = 30, warmup: int = 5,
            device: str = 'cpu', after_each: Optional[Callable[[], None]] = None
            ) -> List[float]:
    """Per-call latency in milliseconds of ``fn()`` after ``warmup`` calls.

    ``after_each`` (a progress bar) runs after every call, outside the timed window.
    """
    def call_untimed():
        fn()
        if after_each:
            after_each()

    for _ in range(warmup):
        call_untimed()
    samples = []
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    for _ in range(iters):
        if device.startswith('cuda'):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            start_s = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start_s) * 1e3)
        if after_each:
            after_each()
    return samples


@torch.no_grad()
def measure_interleaved(fns: Sequence[Callable[[], object]], iters: int, rounds: int = 5,
                        device: str = 'cpu',
                        after_each: Optional[Callable[[], None]] = None) -> List[List[float]]:
    """Per-call latency in ms of each of ``fns`` (already warmed up), taken in turns:
    ``rounds`` rounds, in each of which every fn makes one untimed call (it finds the
    caches holding the previous fn's data) and then its share of the ``iters`` timed
    calls, so that a slow spell of a shared machine hits every fn alike."""
    rounds = min(rounds, iters)
    samples = [[] for _ in fns]
    for index in range(rounds):
        share = iters // rounds + (index < iters % rounds)
        for times, fn in zip(samples, fns):
            times += measure(fn, iters=share, warmup=1, device=device, after_each=after_each)
    return samples


@torch.no_grad()
def measure_stages(stages: Sequence[Tuple[str, Callable]], example, iters: int = 30,
                   warmup: int = 5, device: str = 'cpu') -> Dict[str, List[float]]:
    """Per-stage latency in milliseconds: each call runs the stages in order, each
    on the previous one's result, timing each on its own (synchronised on CUDA),
    so that the stages' times add up to the whole's."""
    samples = {name: [] for name, _ in stages}
    for call in range(warmup + iters):
        state = example
        for name, stage in stages:
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            start_s = time.perf_counter()
            state = stage(state)
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if call >= warmup:
                samples[name].append((time.perf_counter() - start_s) * 1e3)
    return samples


@torch.no_grad()
def matmul_gflops(size: int = 2048, device: str = 'cpu', iters: int = 10,
                  dtype: torch.dtype = torch.float32) -> float:
    """This machine's matrix-multiply throughput in ``dtype``: the compute roof a
    backbone (mostly 1x1 convolutions, i.e. matmuls) can approach."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    samples = measure(lambda: a @ b, iters=iters, warmup=2, device=device)
    return 2 * size ** 3 / (statistics.median(samples) / 1e3) / 1e9


@torch.no_grad()
def count_flops(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward (torch's FLOP counter counts 2 per MAC)."""
    return count_flops_by_module(model, example)['']


@torch.no_grad()
def count_flops_by_module(model: torch.nn.Module, example: torch.Tensor) -> Dict[str, int]:
    """Multiply-accumulates of one forward for the model ('') and every submodule
    called as a module, by dotted name (``backbone``, ``roi_head.mask_head``).
    Only operators torch has formulas for count (convolutions, matrix products);
    custom ops such as mmcv's RoIAlign and NMS add none."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model(example)
    root = type(model).__name__
    counts = {}
    for name, per_op in counter.get_flop_counts().items():
        if name == root or name.startswith(root + '.'):
            counts[name[len(root) + 1:]] = sum(per_op.values()) // 2
    return counts


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
        # whether "fp32" convolutions / matmuls may run in TF32 on tensor cores
        info['cudnn_allow_tf32'] = torch.backends.cudnn.allow_tf32
        info['float32_matmul_precision'] = torch.get_float32_matmul_precision()
    return info
