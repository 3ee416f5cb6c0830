"""Where a fused backbone's time goes on this CPU: every convolution timed alone
on the input it sees in the network, as GMAC/s next to the machine's fp32 matmul
throughput (the roof a 1x1 convolution, a matmul, can reach).

    python benchmarks/conv_throughput.py [--backbone shvit_s4] [--shape 512]
        [--threads 2] [--out benchmarks/results/conv_throughput_shvit_s4.json]

Backs the claim in benchmarks/README.md that SHViT-S4's 1x1 convolutions already
run near the matmul roof, so folding BatchNorm into them can only save the
separate BatchNorm passes.
"""
import argparse
import json
import statistics
import sys

import torch
from torch import nn

from efficientvit_det.fileio import atomic_path
from efficientvit_det.benchmark.measure import machine_info, matmul_gflops, measure
from efficientvit_det.models import build_backbone


def conv_inputs(model: nn.Module, x: torch.Tensor):
    """(name, conv, the input it receives) for every convolution, in call order."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, args, out, name=name: seen.append(
        (name, m, args[0].detach().clone())))
        for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def macs(conv: nn.Conv2d, x: torch.Tensor) -> int:
    with torch.no_grad():
        out = conv(x)
    per_output = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
    return out.numel() * per_output


def profile(model, x, iters):
    rows = []
    for name, conv, inp in conv_inputs(model, x):
        work = macs(conv, inp)
        ms = statistics.median(measure(lambda: conv(inp), iters=iters, warmup=2))
        rows.append(dict(layer=name, kernel=conv.kernel_size[0], groups=conv.groups,
                         input=list(inp.shape), gmacs=work / 1e9, ms=ms,
                         gmac_per_s=work / 1e9 / (ms / 1e3)))
    return rows


def summarize_kind(rows, pointwise: bool):
    chosen = [r for r in rows if (r['kernel'] == 1 and r['groups'] == 1) == pointwise]
    gmacs, ms = sum(r['gmacs'] for r in chosen), sum(r['ms'] for r in chosen)
    return dict(layers=len(chosen), gmacs=gmacs, ms=ms, gmac_per_s=gmacs / (ms / 1e3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backbone', default='shvit_s4')
    parser.add_argument('--shape', type=int, default=512)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--out')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build_backbone(args.backbone).eval().fuse()
    rows = profile(model, torch.randn(1, 3, args.shape, args.shape), args.iters)
    roof = matmul_gflops() / 2  # GMAC/s
    pointwise, other = summarize_kind(rows, True), summarize_kind(rows, False)
    print(f'{args.backbone} fused, 1x3x{args.shape}x{args.shape}, {args.threads} threads; '
          f'fp32 matmul roof {roof:.0f} GMAC/s')
    print(f"{'convolutions':<28} {'layers':>6} {'GMACs':>7} {'ms':>8} {'GMAC/s':>8} {'of roof':>8}")
    for label, group in (('1x1 (matmuls)', pointwise), ('other (depthwise, 3x3, ...)', other)):
        print(f"{label:<28} {group['layers']:>6} {group['gmacs']:7.2f} {group['ms']:8.1f} "
              f"{group['gmac_per_s']:8.1f} {100 * group['gmac_per_s'] / roof:7.0f}%")
    out = args.out or f'benchmarks/results/conv_throughput_{args.backbone}.json'
    with atomic_path(out) as partial, open(partial, 'w') as f:
        json.dump(dict(command=' '.join(['python'] + sys.argv), machine=machine_info(),
                       roof_gmac_per_s=roof, pointwise=pointwise, other=other, layers=rows),
                  f, indent=2)
    print(f'wrote {out}')
    return pointwise, other, roof


if __name__ == '__main__':
    main()
