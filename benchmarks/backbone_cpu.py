"""Backbone CPU latency: ours (eager, fused, fused + TorchScript) next to timm's
implementation with the same weights, every variant, in one run (ratios are what
to compare: the machine is shared and noisy). Also GMACs and parameters.

    python benchmarks/backbone_cpu.py [--shape 512] [--threads 2] [--iters 24]
        [--out benchmarks/results/backbone_cpu.json]

Measurements are interleaved in rounds (timm, ours eager, ours fused, ours
torchscript; each an untimed call, then its share of the runs; repeat) so that a
slow spell of the machine hits all alike (the latency tool's
``measure_interleaved``). The modes are the latency tool's
(efficientvit_det.benchmark.modes).
"""
import argparse
import json
import os
import sys
import time

import torch

from efficientvit_det.checkpoints import adapt_to_model, convert_state_dict
from efficientvit_det.fileio import atomic_path
from efficientvit_det.benchmark.measure import (count_flops, machine_info, measure,
                                                measure_interleaved, summarize)
from efficientvit_det.benchmark.modes import MODES, Context, work_dir
from efficientvit_det.deploy.targets import Target
from efficientvit_det.models import BACKBONE_NAMES, build_backbone

HAS_TIMM_TWIN = ('shvit', 'efficientvit')


def timm_twin(name, size):
    """timm's model of the same variant, with windows set for ``size`` (7 everywhere)."""
    import timm
    kwargs = dict(img_size=size) if name.startswith('efficientvit') else {}
    return timm.create_model(name, num_classes=0, **kwargs).eval()


def run(names, size, iters, rounds):
    x = torch.randn(1, 3, size, size)
    rows = []
    for name in names:
        ours = build_backbone(name).eval()
        entries = {}
        if name.split('_')[0] in HAS_TIMM_TWIN:
            twin = timm_twin(name, size)
            state, layout = convert_state_dict(twin.state_dict())
            ours.load_state_dict(adapt_to_model(ours, state, layout))
            entries['timm eager'] = lambda m=twin: m.forward_intermediates(
                x, intermediates_only=True)
        context = Context('cpu', torch.get_num_threads(), work_dir())
        for label, mode in (('ours eager', 'eager'), ('ours fused', 'fused'),
                            ('ours torchscript', 'torchscript')):
            entries[label] = MODES[mode](Target(name, 'backbone', ours), x, context)
        with torch.no_grad():
            for a, b in zip(ours(x), entries['ours torchscript']()):
                assert torch.allclose(a, b, rtol=1e-3, atol=1e-3 * b.abs().max().item())
        for fn in entries.values():
            measure(fn, iters=0, warmup=4)
        timed = measure_interleaved(list(entries.values()), iters, rounds)
        samples = dict(zip(entries, timed))
        stats = {key: summarize(v) for key, v in samples.items()}
        row = dict(backbone=name, shape=[1, 3, size, size],
                   params_m=sum(p.numel() for p in ours.parameters()) / 1e6,
                   gmacs=count_flops(ours, x) / 1e9,
                   latency=stats)
        if 'timm eager' in stats:
            base = stats['timm eager']['median_ms']
            for key, label in (('eager', 'ours eager'), ('fused', 'ours fused'),
                               ('torchscript', 'ours torchscript')):
                row[f'speedup_{key}_vs_timm'] = base / stats[label]['median_ms']
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def _cells(row):
    lat = row['latency']
    has_timm = 'timm eager' in lat
    return [row['backbone'], f"{row['params_m']:.2f}", f"{row['gmacs']:.2f}",
            f"{lat['timm eager']['median_ms']:.1f}" if has_timm else '-',
            f"{lat['ours eager']['median_ms']:.1f}", f"{lat['ours fused']['median_ms']:.1f}",
            f"{lat['ours torchscript']['median_ms']:.1f}",
            f"{row['speedup_eager_vs_timm']:.2f}x" if has_timm else '-',
            f"{row['speedup_fused_vs_timm']:.2f}x" if has_timm else '-',
            f"{row['speedup_torchscript_vs_timm']:.2f}x" if has_timm else '-']


COLUMNS = ['backbone', 'params M', 'GMACs', 'timm eager ms', 'ours eager ms', 'ours fused ms',
           'ours torchscript ms', 'eager vs timm', 'fused vs timm', 'torchscript vs timm']
WIDTHS = [16, 8, 6, 13, 13, 13, 19, 13, 13, 19]
HEADER = ' '.join(f'{c:>{w}}' for c, w in zip(COLUMNS, WIDTHS))


def format_row(row):
    return ' '.join(f'{c:>{w}}' for c, w in zip(_cells(row), WIDTHS))


def markdown(rows):
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(_cells(row)).replace('| -', '| —') + ' |' for row in rows]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shape', type=int, default=512)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--iters', type=int, default=24)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--backbones', nargs='+', default=list(BACKBONE_NAMES))
    parser.add_argument('--out', default='benchmarks/results/backbone_cpu.json')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f'batch 1, {args.shape}x{args.shape}, {args.threads} threads, median of {args.iters}')
    print(HEADER)
    rows = run(args.backbones, args.shape, args.iters, args.rounds)
    result = dict(benchmark='backbone_cpu', command=' '.join([sys.executable] + sys.argv),
                  time=time.strftime('%Y-%m-%d %H:%M:%S'), machine=machine_info(), rows=rows)
    with atomic_path(args.out) as partial, open(partial, 'w') as f:
        json.dump(result, f, indent=2)
    with atomic_path(os.path.splitext(args.out)[0] + '.md') as partial, open(partial, 'w') as f:
        f.write(markdown(rows) + '\n')
    print(f'wrote {args.out} and {os.path.splitext(args.out)[0]}.md')


if __name__ == '__main__':
    main()
