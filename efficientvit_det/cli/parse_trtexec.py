"""``tools/jetson/parse_trtexec.py``: turn trtexec logs into our latency JSON/CSV and print
the table.

    python tools/jetson/parse_trtexec.py LOG --target shvit_s4 --shape 512x512 --batch 1
        [--device "Jetson AGX Orin"] [--out benchmarks/results/jetson_shvit_s4]

Needs the efficientvit_det package (and so torch, as JetPack's PyTorch wheel
provides) but no GPU work: run it on the Jetson right after trtexec.
"""
import argparse
import os

from ..benchmark.report import HEADER, format_row, to_row, write_results
from ..deploy.trtexec import POWER_NOTES, parse_trtexec
from .common import at_least, parse_shape


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('log')
    parser.add_argument('--target', required=True)
    parser.add_argument('--shape', type=parse_shape, default=(512, 512))
    parser.add_argument('--batch', type=at_least(1), default=1)
    parser.add_argument('--device')
    parser.add_argument('--out')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not os.path.isfile(args.log):
        parser.error(f'{args.log}: no such log file (trtexec ... > LOG, or the recipe\'s own)')
    with open(args.log, errors='replace') as f:
        summary = parse_trtexec(f.read())
    row = to_row(summary, args.target, args.batch, *args.shape, device=args.device)
    print(HEADER)
    print(format_row(row))
    print(f"end-to-end median {row['end_to_end_median_ms']} ms; TensorRT {row['tensorrt']}")
    print(f"command: {row['trtexec_command']}")
    print(POWER_NOTES)
    if args.out:
        paths = write_results([row], args.out, 'cuda', row['trtexec_command'] or '',
                              extra=dict(power_notes=POWER_NOTES))
        print(f'wrote {paths[0]} and {paths[1]}')
    return row
