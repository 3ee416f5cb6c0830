"""The demo, rerun for several training seeds: does `make demo` meet its targets
whatever the seed, in its time? Each seed runs ``tools/demo.py`` as a user does (a
fresh process, its own copy of the demo data generated, its own work dir), one
after the other, timed from the command to its last line.

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--work-dir work_dirs/demo_seeds]
        [--epochs N [--every-pass]] [--out benchmarks/results/demo_seeds]

Prints a table (bbox / segm mAP and AP50, minutes, eager and ONNX Runtime ms per
image) with the mean and range over the seeds, and writes OUT.json and OUT.md (the
table benchmarks/README.md shows). ``--epochs N`` trains N passes (the demo's
``--epochs``: the decay stretched over them); with ``--every-pass`` the val split is
scored after every pass too, and a learning curve (mAP against training minutes)
joins the table: what a longer demo would reach.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the demo's targets (issue: bbox mAP >= 0.5, segm mAP >= 0.4 in <= 10 minutes)
TARGETS = {'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.4, 'minutes': 10.0}
COLUMNS = (('bbox mAP', 'coco/bbox_mAP', '.3f'), ('bbox AP50', 'coco/bbox_mAP_50', '.3f'),
           ('segm mAP', 'coco/segm_mAP', '.3f'), ('segm AP50', 'coco/segm_mAP_50', '.3f'),
           ('minutes', 'minutes', '.1f'), ('training min', 'train_minutes', '.1f'),
           ('eager ms', 'eager_ms', '.0f'), ('ONNX Runtime ms', 'onnxruntime_ms', '.0f'))


CURVE_KEYS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP')


def run_seed(seed: int, work_dir: str, epochs=None, every_pass: bool = False) -> dict:
    """One demo run for ``seed``: its demo_metrics.json plus the wall-clock minutes
    (and, ``every_pass``, the val metrics after each pass)."""
    folder = osp.join(work_dir, f'seed_{seed}')
    command = [sys.executable, 'tools/demo.py', '--seed', str(seed), '--work-dir',
               osp.join(folder, 'work'), '--data-root', osp.join(folder, 'data')]
    command += ['--epochs', str(epochs)] if epochs else []
    if every_pass:
        command += ['--cfg-options', 'train_cfg.val_interval=1', 'train_cfg.val_begin=1']
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    minutes = (time.time() - start) / 60
    with open(osp.join(ROOT, folder, 'work', 'demo_metrics.json')) as f:
        metrics = json.load(f)
    latency = metrics.pop('latency_ms')
    run = dict(metrics, seed=seed, minutes=minutes, eager_ms=latency.get('eager'),
               onnxruntime_ms=latency.get('onnxruntime'))
    if every_pass:
        run['curve'] = pass_curve(osp.join(ROOT, folder, 'work'))
    return run


def pass_curve(work_dir: str) -> list:
    """The val metrics logged after each pass, with the training minutes up to it
    (the logged seconds per iteration times the iterations between log lines)."""
    from efficientvit_det.mmlab.visualize import read_scalars
    curve, seconds, last_step = [], 0.0, 0
    for record in read_scalars(work_dir):
        if 'loss' in record:  # a training log line
            seconds += record['time'] * (record['step'] - last_step)
            last_step = record['step']
        elif CURVE_KEYS[0] in record:
            curve.append(dict({key: record[key] for key in CURVE_KEYS},
                              train_minutes=seconds / 60, iterations=last_step))
    return curve


def curve_table(runs) -> str:
    """Markdown: a row per seed and pass: the training minutes and the val mAP then."""
    lines = ['| seed | pass | iterations | training min | bbox mAP | bbox AP50 | segm mAP |',
             '|---|---|---|---|---|---|---|']
    for run in runs:
        for index, point in enumerate(run.get('curve', []), 1):
            lines.append(f'| {run["seed"]} | {index} | {point["iterations"]} | '
                         f'{point["train_minutes"]:.1f} | ' + ' | '.join(
                             f'{point[key]:.3f}' for key in CURVE_KEYS) + ' |')
    return '\n'.join(lines)


def table(runs) -> str:
    """Markdown: a row per seed, then the mean and the range of each column."""
    lines = ['| seed | ' + ' | '.join(name for name, _, _ in COLUMNS) + ' |',
             '|---|' + '---|' * len(COLUMNS)]
    for run in runs:
        lines.append(f'| {run["seed"]} | ' + ' | '.join(
            '—' if run.get(key) is None else format(run[key], spec)
            for _, key, spec in COLUMNS) + ' |')
    for label, reduce in (('mean', lambda v: sum(v) / len(v)),
                          ('range', lambda v: max(v) - min(v))):
        cells = []
        for _, key, spec in COLUMNS:
            values = [run[key] for run in runs if run.get(key) is not None]
            cells.append(format(reduce(values), spec) if values else '—')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def verdict(runs) -> str:
    """Which seeds miss which target."""
    misses = [f'seed {run["seed"]}: {key} {run[key]:.3g}' for run in runs
              for key, bound in TARGETS.items()
              if (run[key] > bound if key == 'minutes' else run[key] < bound)]
    return ('every seed meets bbox mAP >= 0.5, segm mAP >= 0.4 in <= 10 min' if not misses
            else 'missed: ' + '; '.join(misses))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/demo_seeds')
    parser.add_argument('--epochs', type=int, help="passes over the training images "
                        "(default the demo's)")
    parser.add_argument('--every-pass', action='store_true',
                        help='also score the val split after every pass: a learning curve')
    parser.add_argument('--out', default='benchmarks/results/demo_seeds')
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < len(args.seeds):
        parser.error('--seeds: give each seed once (training is deterministic for a seed)')
    from efficientvit_det.benchmark.measure import machine_info
    from efficientvit_det.fileio import atomic_path
    runs = []
    document = dict(command='python ' + ' '.join(['benchmarks/demo_seeds.py'] + sys.argv[1:]),
                    time=time.strftime('%Y-%m-%d %H:%M:%S'), machine=machine_info(),
                    targets=TARGETS, runs=runs)
    for seed in args.seeds:
        print(f'[demo_seeds] seed {seed}: python tools/demo.py --seed {seed}', flush=True)
        runs.append(run_seed(seed, args.work_dir, args.epochs, args.every_pass))
        document['verdict'] = verdict(runs)
        # written after every seed: a long run stopped midway keeps what it measured
        with atomic_path(osp.join(ROOT, args.out + '.json')) as partial, open(partial, 'w') as f:
            json.dump(document, f, indent=2)
    curve = f'\n\nAfter each pass (training minutes from the logged iteration times):\n\n' \
        f'{curve_table(runs)}' if args.every_pass else ''
    rendered = (f'{table(runs)}{curve}\n\n{document["verdict"]} ({document["time"]}, '
                f'{document["machine"]["cpu"]}, `{document["command"]}`)\n')
    with atomic_path(osp.join(ROOT, args.out + '.md')) as partial, open(partial, 'w') as f:
        f.write(rendered)
    print(rendered)
    print(f'wrote {args.out}.json, {args.out}.md')
    return document


if __name__ == '__main__':
    os.chdir(ROOT)
    from efficientvit_det.cli.common import run as run_tool  # table()'s rows are `run`
    run_tool(main)
