"""Whole detectors on CPU, from image to final detections (normalisation, NMS, box
head on the RPN's proposals, mask head on up to 100 detections): ours next to
mmdet's own ResNet-50 detectors, eager PyTorch with per-stage times and ONNX
Runtime, plus a deployment test_cfg for Mask R-CNN.

    python benchmarks/whole_detectors_cpu.py [--shape 800x1333 512x512] [--iters 5]
        [--threads 2] [--out-dir benchmarks/results] [--rerun]

Each shape is one ``tools/benchmark_latency.py --whole`` run over every config,
all rows (config x mode) timed in the same interleaved rounds, written to
``OUT_DIR/whole_cpu_<shape>.{json,csv}`` (the model index quotes these); the
table goes to stdout and to ``OUT_DIR/whole_cpu.{md,json}``. With ``--rerun`` the
same run follows at once into ``whole_cpu_<shape>_rerun.json``, and the two are
compared as ``benchmarks/rank_consistency.py`` does
(``whole_cpu_<shape>_rank_consistency.json``; exit 1 when a ranking flips).
Random weights (the latency tool's, with the box classifier sharpened so that 100
detections reach the mask head, as on a busy image): what is timed is the work,
not the accuracy.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import rank_consistency  # noqa: E402  (benchmarks/, next to this script)
from efficientvit_det.fileio import atomic_path  # noqa: E402
from efficientvit_det.cli import benchmark_latency as engine  # noqa: E402
from efficientvit_det.deploy.targets import config_name  # noqa: E402

#: (label, config pattern): ours and mmdet's own ResNet-50 control
BACKBONES = [('SHViT-S4', 'configs/{}_shvit_s4.py'),
             ('EfficientViT-M4', 'configs/{}_efficientvit_m4.py'),
             ('UniForm-L', 'configs/{}_uniform_l.py'),
             ('ResNet-50 (mmdet)', 'benchmarks/configs/{}_r50.py')]
DETECTORS = ('mask_rcnn', 'retinanet')
CONTROL = 'ResNet-50 (mmdet)'
#: fewer RPN proposals through the box head: the usual deployment trade
DEPLOYMENT = ('mask_rcnn', 'SHViT-S4, 300 proposals',
              'benchmarks/configs/mask_rcnn_shvit_s4_300_proposals.py')


def configs():
    """(detector, label, config) of every row group, in table order."""
    return [(d, label, pattern.format(d)) for d in DETECTORS
            for label, pattern in BACKBONES] + [DEPLOYMENT]


def measure_shape(shape, iters, threads, out):
    """One interleaved run of every config at one shape, eager (with stages) and
    ONNX Runtime; the rows by (config name, mode)."""
    argv = ['--config', *[os.path.join(ROOT, c) for _, _, c in configs()], '--whole',
            '--shape', shape, '--mode', 'eager', 'onnxruntime', '--threads', str(threads),
            '--iters', str(iters), '--warmup', '1', '--out', out]
    return {(r['target'], r['mode']): r for r in engine.main(argv)}


def entries_of(rows, shape, source):
    entries = []
    for detector, label, config in configs():
        name = config_name(config)
        eager, ort = rows[name, 'eager'], rows[name, 'onnxruntime']
        entries.append(dict(detector=detector, backbone=label, config=config, shape=shape,
                            source=source, eager_ms=eager.get('median_ms'),
                            onnxruntime_ms=ort.get('median_ms'),
                            onnxruntime_status=ort['status'], gmacs=eager['gmacs'],
                            stages_ms=eager.get('stages_ms'),
                            backbone_share=eager.get('backbone_share'),
                            unstable=[r['mode'] for r in (eager, ort) if r.get('unstable')]))
    return entries


def fastest(entry):
    ok = [entry['eager_ms']] + ([entry['onnxruntime_ms']]
                                if entry['onnxruntime_status'] == 'ok' else [])
    return min(ok)


def table(entries) -> str:
    lines = ['| detector | backbone | input | GMACs | eager ms | ONNX Runtime ms | '
             'backbone share (eager) | R-50 / this (fastest path) |', '|' + '---|' * 8]
    for entry in entries:
        control = next(e for e in entries if e['detector'] == entry['detector'] and
                       e['shape'] == entry['shape'] and e['backbone'] == CONTROL)
        ort = (f"{entry['onnxruntime_ms']:.0f}" if entry['onnxruntime_status'] == 'ok'
               else entry['onnxruntime_status'])
        eager = f"{entry['eager_ms']:.0f}" + ('!' if 'eager' in entry['unstable'] else '')
        ort += '!' if 'onnxruntime' in entry['unstable'] else ''
        lines.append(f"| {entry['detector']} | {entry['backbone']} | {entry['shape']} | "
                     f"{entry['gmacs']:.1f} | {eager} | {ort} | "
                     f"{100 * entry['backbone_share']:.0f}% | "
                     f"{fastest(control) / fastest(entry):.2f}x |")
    return '\n'.join(lines)


def stage_table(entries) -> str:
    names = list(dict.fromkeys(n for e in entries for n in e['stages_ms']))
    lines = ['| detector | backbone | input | ' + ' | '.join(names) + ' |',
             '|' + '---|' * (3 + len(names))]
    for entry in entries:
        cells = [f"{entry['stages_ms'][n]:.0f}" if n in entry['stages_ms'] else '—'
                 for n in names]
        lines.append(f"| {entry['detector']} | {entry['backbone']} | {entry['shape']} | "
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write(path, text):
    with atomic_path(path) as partial, open(partial, 'w') as f:
        f.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shape', nargs='+', default=['800x1333', '512x512'])
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out-dir', default=os.path.join(HERE, 'results'))
    parser.add_argument('--rerun', action='store_true',
                        help='run each shape twice back to back and compare the rankings')
    args = parser.parse_args(argv)
    entries, consistent = [], True
    for shape in args.shape:
        out = os.path.join(args.out_dir, f'whole_cpu_{shape}')
        rows = measure_shape(shape, args.iters, args.threads, out)
        entries += entries_of(rows, shape, os.path.relpath(out + '.json', ROOT))
        if args.rerun:
            measure_shape(shape, args.iters, args.threads, out + '_rerun')
            runs = [out + '.json', out + '_rerun.json']
            report = rank_consistency.compare(*map(rank_consistency.load, runs))
            print(rank_consistency.describe(report))
            write(out + '_rank_consistency.json', json.dumps(dict(
                report, first=os.path.relpath(runs[0], ROOT),
                second=os.path.relpath(runs[1], ROOT)), indent=2) + '\n')
            consistent &= not report['contradictions']
    text = (table(entries) + '\n\n(! marks a row whose 95% interval of the median is too '
            'wide to trust.)\n\nPer stage, eager (ms, medians; the stages run one after '
            'another in each timed call):\n\n' + stage_table(entries))
    print(text)
    write(os.path.join(args.out_dir, 'whole_cpu.md'), text + '\n')
    command = ' '.join(['python benchmarks/whole_detectors_cpu.py',
                        *(argv if argv is not None else sys.argv[1:])])
    write(os.path.join(args.out_dir, 'whole_cpu.json'),
          json.dumps(dict(command=command, entries=entries), indent=2) + '\n')
    return 0 if consistent else 1


if __name__ == '__main__':
    sys.exit(main())
