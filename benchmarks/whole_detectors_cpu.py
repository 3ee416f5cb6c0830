"""Whole detectors on CPU, from image to final detections (normalisation, NMS, box
head on the RPN's proposals, mask head on up to 100 detections): ours next to
mmdet's own ResNet-50 detectors, eager PyTorch with per-stage times and ONNX
Runtime, plus a deployment test_cfg for Mask R-CNN.

    python benchmarks/whole_detectors_cpu.py [--shape 800x1333 512x512] [--iters 5]
        [--threads 2] [--out-dir benchmarks/results]

Each (config, shape) is one ``tools/benchmark_latency.py --whole`` run, written to
``OUT_DIR/whole_cpu_<shape>/<config>.json`` (the model index quotes these); the
table goes to stdout and to ``OUT_DIR/whole_cpu.{md,json}``. Random weights (the
latency tool's, with the box classifier sharpened so that 100 detections reach
the mask head, as on a busy image): what is timed is the work, not the accuracy.
Models run one after another: compare ratios within a shape, not across runs.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from efficientvit_det.fileio import atomic_path  # noqa: E402
from efficientvit_det.latency import engine  # noqa: E402

#: (label, config pattern): ours and mmdet's own ResNet-50 control
BACKBONES = [('SHViT-S4', 'configs/{}_shvit_s4.py'),
             ('EfficientViT-M4', 'configs/{}_efficientvit_m4.py'),
             ('UniForm-L', 'configs/{}_uniform_l.py'),
             ('ResNet-50 (mmdet)', 'benchmarks/configs/{}_r50.py')]
DETECTORS = ('mask_rcnn', 'retinanet')
CONTROL = 'ResNet-50 (mmdet)'
#: fewer RPN proposals through the box head: the usual deployment trade
DEPLOYMENT = ('SHViT-S4, 300 proposals', 'configs/mask_rcnn_shvit_s4.py',
              ['model.test_cfg.rpn.nms_pre=300', 'model.test_cfg.rpn.max_per_img=300'])


def measure_one(config, shape, iters, threads, out_dir, cfg_options=(), suffix=''):
    """Eager (with stages) and ONNX Runtime rows of one whole detector at one shape."""
    name = os.path.splitext(os.path.basename(config))[0] + suffix
    out = os.path.join(out_dir, f'whole_cpu_{shape}', name)
    argv = ['--config', os.path.join(ROOT, config), '--whole', '--shape', shape,
            '--mode', 'eager', 'onnxruntime', '--threads', str(threads),
            '--iters', str(iters), '--warmup', '1', '--out', out]
    if cfg_options:
        argv += ['--cfg-options', *cfg_options]
    rows = {r['mode']: r for r in engine.main(argv)}
    eager, ort = rows['eager'], rows['onnxruntime']
    return dict(config=config, shape=shape, source=os.path.relpath(out + '.json', ROOT),
                eager_ms=eager.get('median_ms'), onnxruntime_ms=ort.get('median_ms'),
                onnxruntime_status=ort['status'], gmacs=eager['gmacs'],
                stages_ms=eager.get('stages_ms'), backbone_share=eager.get('backbone_share'),
                unstable=[m for m, r in rows.items() if r.get('unstable')])


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
        lines.append(f"| {entry['detector']} | {entry['backbone']} | {entry['shape']} | "
                     f"{entry['gmacs']:.1f} | {entry['eager_ms']:.0f} | {ort} | "
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shape', nargs='+', default=['800x1333', '512x512'])
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out-dir', default=os.path.join(ROOT, 'benchmarks', 'results'))
    args = parser.parse_args(argv)
    entries = []
    for shape in args.shape:
        for detector in DETECTORS:
            for backbone, pattern in BACKBONES:
                entry = measure_one(pattern.format(detector), shape, args.iters, args.threads,
                                    args.out_dir)
                entries.append(dict(entry, detector=detector, backbone=backbone))
        label, config, options = DEPLOYMENT
        entry = measure_one(config, shape, args.iters, args.threads, args.out_dir, options,
                            suffix='_300_proposals')
        entries.append(dict(entry, detector='mask_rcnn', backbone=label, cfg_options=options))
    text = (table(entries) + '\n\nPer stage, eager (ms, medians; the stages run one after '
            'another in each timed call):\n\n' + stage_table(entries))
    print(text)
    with atomic_path(os.path.join(args.out_dir, 'whole_cpu.md')) as partial:
        with open(partial, 'w') as f:
            f.write(text + '\n')
    with atomic_path(os.path.join(args.out_dir, 'whole_cpu.json')) as partial:
        with open(partial, 'w') as f:
            json.dump(dict(command='python benchmarks/whole_detectors_cpu.py ' +
                           ' '.join(argv if argv is not None else sys.argv[1:]),
                           entries=entries), f, indent=2)


if __name__ == '__main__':
    main()
