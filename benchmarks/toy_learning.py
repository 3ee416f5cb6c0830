"""Toy detection learning side by side with a control: our toy detector and the same
detector with mmdet's own ResNet-18 + stock FPN in place of SHViT-S1 + TransposedFPN
(benchmarks/configs/), trained from scratch one after the other in one run, on the
same toy data, schedule, optimizer, heads and seed, each evaluated on the toy val split.

    python benchmarks/toy_learning.py [--detector mask_rcnn|retinanet] [--epochs N]
        [--every-pass] [--data-root data/toy_coco]
        [--out benchmarks/results/toy_learning_mask_rcnn]
        [--cfg-options KEY=VALUE ...]   # one change, to both arms: an ablation

Prints a table (s/iter, bbox and segm mAP / AP50 / AP_s/m/l) and writes JSON.
``--every-pass`` also evaluates after every pass over the training images: the
learning curve, mAP against training minutes (evaluation not counted), of each arm.
The machine is shared: compare the two rows of one run, not runs across days.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARMS = {
    'SHViT-S1 + TransposedFPN (ours)': 'configs/toy/{detector}_shvit_s1_toy.py',
    'ResNet-18 + FPN (mmdet, control)': 'benchmarks/configs/{detector}_r18_toy.py',
}
METRICS = ('mAP', 'mAP_50', 'mAP_s', 'mAP_m', 'mAP_l')


def train_and_evaluate(config, work_dir, data_root, epochs, seed, cfg_options=(),
                       every_pass=False):
    """(seconds per training iteration as mmengine logs them, iterations, training
    minutes with start-up, final metrics, learning curve) of one arm. The curve
    (with ``every_pass``; else empty) has one point per pass: training minutes up
    to its end (the logged iteration times summed) and the metrics after it."""
    from efficientvit_det.cli import train_main
    from efficientvit_det.demo import toy_run_options
    options = toy_run_options(config, data_root, epochs, every_pass)
    options += [f'randomness.seed={seed}'] + list(cfg_options)
    start = time.time()
    runner = train_main([config, '--work-dir', work_dir, '--overwrite',
                         '--cfg-options', *options])
    minutes = (time.time() - start) / 60
    iter_seconds = runner.message_hub.get_scalar('train/time').data[0]
    metrics = runner.test()
    curve = []
    if every_pass:
        per_pass = {key: runner.message_hub.get_scalar(f'val/{key}').data[0]
                    for key in metrics}
        passes = len(per_pass['coco/bbox_mAP'])
        iters_per_pass = runner.iter // passes
        curve = [dict(passes=index + 1,
                      train_minutes=float(iter_seconds[:(index + 1) * iters_per_pass].sum()) / 60,
                      metrics={key: float(values[index]) for key, values in per_pass.items()})
                 for index in range(passes)]
    return float(iter_seconds.mean()), runner.iter, minutes, metrics, curve


def table(document) -> str:
    kinds = [k for k in ('bbox', 'segm') if any(f'coco/{k}_mAP' in r['metrics']
                                                for r in document['arms'])]
    header = ['model', 'params M', 's/iter'] + [f'{k} {m}' for k in kinds for m in METRICS]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for arm in document['arms']:
        cells = [arm['name'], f"{arm['params_m']:.1f}", f"{arm['seconds_per_iter']:.2f}"]
        cells += [f"{arm['metrics'].get(f'coco/{k}_{m}', float('nan')):.3f}"
                  for k in kinds for m in METRICS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def curve_table(document) -> str:
    """Passes down, one bbox (and segm) mAP column per arm, each with its minutes."""
    arms = [arm for arm in document['arms'] if arm.get('curve')]
    kinds = [k for k in ('bbox', 'segm') if f'coco/{k}_mAP' in arms[0]['curve'][0]['metrics']]
    header = ['passes'] + [f"{arm['name']}: {cell}" for arm in arms
                           for cell in ['train min'] + [f'{k} mAP' for k in kinds]]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for index in range(max(len(arm['curve']) for arm in arms)):
        cells = [str(index + 1)]
        for arm in arms:
            point = arm['curve'][index] if index < len(arm['curve']) else None
            cells += [f"{point['train_minutes']:.1f}" if point else '']
            cells += [f"{point['metrics'][f'coco/{k}_mAP']:.3f}" if point else ''
                      for k in kinds]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--detector', choices=('mask_rcnn', 'retinanet'), default='mask_rcnn')
    parser.add_argument('--epochs', type=int, help='default: the toy schedule (1)')
    parser.add_argument('--every-pass', action='store_true',
                        help='evaluate after every pass too: the learning curve')
    parser.add_argument('--data-root', default='data/toy_coco')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default='work_dirs/toy_learning')
    parser.add_argument('--out', help='JSON path without suffix; default '
                        'benchmarks/results/toy_learning_<detector>')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='config overrides applied to both arms (ablations)')
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    from mmengine.config import Config
    from efficientvit_det.demo import ensure_toy_coco
    from efficientvit_det.fileio import atomic_path
    from efficientvit_det.latency import machine_info
    from efficientvit_det.registry import build_model_from_config
    ensure_toy_coco(args.data_root)
    out = args.out or f'benchmarks/results/toy_learning_{args.detector}'
    arms = []
    for name, pattern in ARMS.items():
        config = pattern.format(detector=args.detector)
        cfg = Config.fromfile(config)
        epochs = args.epochs or cfg.train_cfg.max_epochs
        params = sum(p.numel() for p in build_model_from_config(cfg).parameters()) / 1e6
        print(f'[toy_learning] {name}: training {config} for {epochs} epochs')
        per_iter, iters, minutes, metrics, curve = train_and_evaluate(
            config, osp.join(args.work_dir, f'{args.detector}_{len(arms)}'), args.data_root,
            epochs, args.seed, args.cfg_options, args.every_pass)
        arms.append(dict(name=name, config=config, epochs=epochs, iterations=iters,
                         params_m=params, train_minutes=minutes, seconds_per_iter=per_iter,
                         metrics={k: float(v) for k, v in metrics.items()}, curve=curve))
    document = dict(command='python ' + ' '.join([osp.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                    time=time.strftime('%Y-%m-%d %H:%M:%S'), machine=machine_info(),
                    seed=args.seed, data_root=args.data_root, cfg_options=args.cfg_options,
                    arms=arms)
    with atomic_path(out + '.json') as partial, open(partial, 'w') as f:
        json.dump(document, f, indent=2)
    print(table(document))
    if args.every_pass:
        print(curve_table(document))
    print(f'wrote {out}.json')
    return document


if __name__ == '__main__':
    from efficientvit_det.cli import run
    run(main)
