"""``tools/plot_speed_accuracy.py``: speed-accuracy chart from our latency JSON and a table
of accuracies.

    python tools/plot_speed_accuracy.py benchmarks/results/cpu.json \
        [--accuracy benchmarks/accuracy.csv] [--metric "COCO box AP"] [--mode best]
        [--out benchmarks/results/speed_accuracy.png]

The accuracy table is CSV with columns ``target,metric,accuracy[,source]`` (the papers'
numbers ship in benchmarks/accuracy.csv; add your own rows). One point per
backbone: its latency in the chosen mode (``best``: its fastest successful mode).
"""
import argparse
import csv
import os

from ..benchmark.report import read_results
from ..errors import ResultsFileError
from ..mmlab.model_index import repo_root


def load_latency(paths, mode):
    points = {}
    for path in paths:
        for row in read_results(path)['results']:
            if row['status'] != 'ok' or (mode != 'best' and row['mode'] != mode):
                continue
            name = row['target']
            if name not in points or row['median_ms'] < points[name]['median_ms']:
                points[name] = row
    return points


def load_accuracy(path, metric):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if not metric or r.get('metric', metric) == metric]
    return {r['target']: float(r['accuracy']) for r in rows}


def draw(plt, latency, accuracy, names, metric, mode):
    """The chart as a figure: a line per family, the medians' 95% intervals as error bars."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for family in ('shvit', 'efficientvit', 'uniform', 'timm'):
        members = sorted((n for n in names if n.startswith(family)), key=accuracy.get)
        if members:
            line, = ax.plot([latency[n]['median_ms'] for n in members],
                            [accuracy[n] for n in members], 'o-', label=family)
            with_interval = [n for n in members if latency[n].get('ci95_low_ms') is not None]
            if with_interval:  # the median's 95% interval, where the run recorded one
                medians = [latency[n]['median_ms'] for n in with_interval]
                ax.errorbar(medians, [accuracy[n] for n in with_interval], fmt='none',
                            ecolor=line.get_color(), capsize=3, xerr=[
                                [m - latency[n]['ci95_low_ms'] for m, n in
                                 zip(medians, with_interval)],
                                [latency[n]['ci95_high_ms'] - m for m, n in
                                 zip(medians, with_interval)]])
    for name in names:
        ax.annotate(name, (latency[name]['median_ms'], accuracy[name]), fontsize=7,
                    xytext=(3, 3), textcoords='offset points')
    row = latency[names[0]]
    ax.set_xlabel(f"latency (ms, median and 95% interval; {row['device']}, batch {row['batch']}, "
                  f"{row['height']}x{row['width']}, mode {mode})")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('latency', nargs='+', help='JSON files of tools/benchmark_latency.py')
    parser.add_argument('--accuracy',
                        default=os.path.join(repo_root(), 'benchmarks', 'accuracy.csv'))
    parser.add_argument('--metric', default='ImageNet top-1')
    parser.add_argument('--mode', default='best')
    parser.add_argument('--out', default='benchmarks/results/speed_accuracy.png')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    try:
        latency = load_latency(args.latency, args.mode)
    except ResultsFileError as err:
        parser.error(str(err))
    try:
        accuracy = load_accuracy(args.accuracy, args.metric)
    except (OSError, ValueError, KeyError) as err:
        parser.error(f'--accuracy {args.accuracy}: not a CSV with columns target, metric, '
                     f'accuracy (a number) ({err!r})')
    names = sorted(set(latency) & set(accuracy), key=lambda n: latency[n]['median_ms'])
    if not names:
        parser.error(f'no backbone has both a latency ({sorted(latency)}) and a '
                     f'"{args.metric}" accuracy ({sorted(accuracy)})')
    fig = draw(plt, latency, accuracy, names, args.metric, args.mode)
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    fig.savefig(args.out, dpi=120)
    if args.out.endswith('.png'):
        fig.savefig(args.out[:-4] + '.svg')
    print(f'wrote {args.out} ({len(names)} backbones: {", ".join(names)})')
