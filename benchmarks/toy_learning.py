"""Toy learning side by side with a control: our toy model and the same model with
mmdet's / mmseg's own ResNet-18 + stock FPN in place of SHViT-S1 + TransposedFPN
(benchmarks/configs/), trained from scratch one after the other in one run, on the
same toy data, schedule, optimizer, heads and seed, each evaluated on the toy val split.

    python benchmarks/toy_learning.py [--model mask_rcnn|retinanet|fcos|semantic_fpn]
        [--epochs N | --iters N] [--every-pass] [--data-root data/toy_coco|data/toy_ade]
        [--out benchmarks/results/toy_learning_<model>] [--control CONFIG ...]
        [--seeds N ...] [--cfg-options KEY=VALUE ...]   # one change, to every arm: an ablation

Prints a table (s/iter; bbox and segm mAP / AP50 / AP_s/m/l, or mIoU and each
class's IoU) and writes it beside the JSON (OUT.json, OUT.md). ``--every-pass``
also evaluates after every pass over the training images: the learning curve,
metrics against training minutes (evaluation not counted), of each arm.
``--seeds`` trains every arm once per seed (all arms of a seed before the next
seed, so that the machine's load drifts over all of them alike) and adds a table
of each arm's mean and range over the seeds: how far one seed's difference can be
trusted. The detectors' schedules are passes
(``--epochs``), the Semantic FPN's iterations (``--iters``).
The machine is shared: compare the rows of one run, not runs across days.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OURS, CONTROL = 'SHViT-S1 + TransposedFPN (ours)', 'ResNet-18 + FPN ({library}, control)'
#: model -> (our toy config, the control's config, its library, the toy data's default root)
MODELS = {
    'mask_rcnn': ('configs/toy/mask_rcnn_shvit_s1_toy.py',
                  'benchmarks/configs/mask_rcnn_r18_toy.py', 'mmdet', 'data/toy_coco'),
    'retinanet': ('configs/toy/retinanet_shvit_s1_toy.py',
                  'benchmarks/configs/retinanet_r18_toy.py', 'mmdet', 'data/toy_coco'),
    # beyond the R-CNN family: mmdet's FCOS, ours written by tools/swap_backbone.py
    'fcos': ('benchmarks/configs/fcos_shvit_s1_toy.py',
             'benchmarks/configs/fcos_r18_toy.py', 'mmdet', 'data/toy_coco'),
    'semantic_fpn': ('configs/toy/fpn_shvit_s1_ade20k_toy.py',
                     'benchmarks/configs/fpn_r18_ade20k_toy.py', 'mmseg', 'data/toy_ade'),
}
METRICS = ('mAP', 'mAP_50', 'mAP_s', 'mAP_m', 'mAP_l')


def train_and_evaluate(config, work_dir, options):
    """(seconds per training iteration as mmengine logs them, iterations, training
    minutes with start-up, final metrics, learning curve) of one arm trained with the
    ``--cfg-options`` ``options``. The curve has a point per evaluation during
    training (none unless the options ask for them): the iterations and training
    minutes (the logged iteration times summed) up to it, and the metrics there."""
    from efficientvit_det.cli.train import train_main
    start = time.time()
    runner = train_main([config, '--work-dir', work_dir, '--overwrite', '--cfg-options', *options])
    minutes = (time.time() - start) / 60
    iter_seconds = runner.message_hub.get_scalar('train/time').data[0]
    metrics = runner.test()
    return (float(iter_seconds.mean()), runner.iter, minutes, metrics,
            learning_curve(runner, metrics, iter_seconds, options))


def learning_curve(runner, metrics, iter_seconds, options):
    settings = dict(option.split('=', 1) for option in options)
    history = {key: runner.message_hub.get_scalar(f'val/{key}').data[0]
               for key in metrics if f'val/{key}' in runner.message_hub.log_scalars}
    evaluations = max((len(values) for values in history.values()), default=0)
    # a class predicted in only some evaluations has a shorter history: left out
    history = {key: values for key, values in history.items() if len(values) == evaluations}
    iterations = evaluation_iterations(settings, runner.iter)[:evaluations]
    return [dict(iterations=at, train_minutes=float(iter_seconds[:at].sum()) / 60,
                 metrics={key: float(values[index]) for key, values in history.items()})
            for index, at in enumerate(iterations)]


def evaluation_iterations(settings, iterations):
    """The iterations after which mmengine's training loops validate, given the run's
    ``--cfg-options``: every val_interval passes (epoch loop) or iterations from
    val_begin on, and after the last."""
    by_epoch = 'train_cfg.max_epochs' in settings
    length = int(settings['train_cfg.max_epochs' if by_epoch else 'train_cfg.max_iters'])
    unit = iterations // length if by_epoch else 1
    begin = int(settings.get('train_cfg.val_begin', 1))
    interval = int(settings['train_cfg.val_interval'])
    return [step * unit for step in range(1, length + 1)
            if step >= begin and (step % interval == 0 or step == length)]


def metric_columns(metric_sets, headline_only=False):
    """(header, key, format) of the metrics the tables show: COCO bbox / segm mAPs
    (detection; ``headline_only``: mAP alone, for the curve) or mIoU and each
    class's IoU, in percent (segmentation)."""
    from efficientvit_det.mmlab.toy_data import ADE_TOY_CLASS_NAMES
    keys = {key for metrics in metric_sets for key in metrics}
    if 'mIoU' in keys:
        known = [f'IoU.{name}' for name in ADE_TOY_CLASS_NAMES]  # the toy classes first
        per_class = sorted((key for key in keys if key.startswith('IoU.')),
                           key=lambda key: (known.index(key) if key in known else len(known), key))
        return [('mIoU', 'mIoU', '.1f')] + [
            (f"IoU {ADE_TOY_CLASS_NAMES.get(key[4:], key[4:])}", key, '.1f') for key in per_class]
    return [(f'{kind} {metric}', f'coco/{kind}_{metric}', '.3f') for kind in ('bbox', 'segm')
            for metric in (METRICS[:1] if headline_only else METRICS)
            if f'coco/{kind}_{metric}' in keys]


def _cell(metrics, key, spec):
    return format(metrics[key], spec) if key in metrics else ''


def label(arm, document) -> str:
    """An arm's name, with its seed when the run trained several."""
    return f"{arm['name']}, seed {arm['seed']}" if len(document['seeds']) > 1 else arm['name']


def table(document) -> str:
    columns = metric_columns([arm['metrics'] for arm in document['arms']])
    header = ['model', 'params M', 's/iter'] + [name for name, _, _ in columns]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for arm in document['arms']:
        cells = [label(arm, document), f"{arm['params_m']:.1f}", f"{arm['seconds_per_iter']:.2f}"]
        cells += [_cell(arm['metrics'], key, spec) for _, key, spec in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def seed_table(document) -> str:
    """Per arm over the seeds: mean s/iter, and each headline metric's mean with its
    range (min-max), the spread a single seed's difference has to beat."""
    columns = metric_columns([arm['metrics'] for arm in document['arms']], headline_only=True)
    header = ['model', 'seeds', 's/iter'] + [f'{name} mean (min-max)' for name, _, _ in columns]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    names = list(dict.fromkeys(arm['name'] for arm in document['arms']))
    for name in names:
        runs = [arm for arm in document['arms'] if arm['name'] == name]
        cells = [name, str(len(runs)),
                 f"{sum(arm['seconds_per_iter'] for arm in runs) / len(runs):.2f}"]
        for _, key, spec in columns:
            values = [arm['metrics'][key] for arm in runs if key in arm['metrics']]
            cells.append(f"{format(sum(values) / len(values), spec)} ({format(min(values), spec)}"
                         f"-{format(max(values), spec)})" if values else '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def curve_table(document) -> str:
    """One row per evaluation during training; per arm its iterations, training
    minutes and headline metrics there."""
    arms = [arm for arm in document['arms'] if arm.get('curve')]
    if not arms:  # no evaluation fell inside training (a run shorter than a pass)
        return 'no evaluation during training: no learning curve'
    columns = metric_columns([point['metrics'] for arm in arms for point in arm['curve']],
                             headline_only=True)
    header = [f"{label(arm, document)}: {cell}" for arm in arms
              for cell in ['iterations', 'train min'] + [name for name, _, _ in columns]]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for index in range(max(len(arm['curve']) for arm in arms)):
        cells = []
        for arm in arms:
            point = arm['curve'][index] if index < len(arm['curve']) else None
            cells += [str(point['iterations']), f"{point['train_minutes']:.1f}"] if point else ['', '']
            cells += [_cell(point['metrics'] if point else {}, key, spec) for _, key, spec in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    from efficientvit_det.cli.common import at_least
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', choices=tuple(MODELS), default='mask_rcnn')
    parser.add_argument('--epochs', type=at_least(1),
                        help='detectors: passes (default: the toy schedule)')
    parser.add_argument('--iters', type=at_least(1),
                        help='Semantic FPN: iterations (default: the toy schedule)')
    parser.add_argument('--every-pass', action='store_true',
                        help='evaluate after every pass too: the learning curve')
    parser.add_argument('--data-root', help='default: data/toy_coco (detectors), '
                        'data/toy_ade (Semantic FPN); generated when missing')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='train every arm once per seed (default: 0)')
    parser.add_argument('--work-dir', default='work_dirs/toy_learning')
    parser.add_argument('--out', help='JSON path without suffix; default '
                        'benchmarks/results/toy_learning_<model>')
    parser.add_argument('--control', nargs='+', help='the control arms\' configs (a '
                        'diagnosis); default: the model\'s ResNet-18 + FPN control')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='config overrides applied to every arm (ablations)')
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < len(args.seeds):
        parser.error(f'--seeds {" ".join(map(str, args.seeds))}: give each seed once '
                     '(training is deterministic for a seed)')
    ours, stock_control, library, default_root = MODELS[args.model]
    controls = {stock_control: CONTROL.format(library=library)}  # config -> arm name
    if args.control:
        missing = [path for path in args.control if not osp.isfile(path)]
        if missing:
            parser.error(f'--control {" ".join(missing)}: no such config file')
        controls = {control: controls.get(control, f'{control} (control)')  # named by config
                    for control in (osp.relpath(osp.abspath(path), ROOT) for path in args.control)}
    segmentation = args.model == 'semantic_fpn'
    length = args.iters if segmentation else args.epochs
    if (args.epochs if segmentation else args.iters) is not None:
        parser.error('--epochs sets the detectors\' schedule (passes), --iters the '
                     'Semantic FPN\'s (iterations)')
    os.chdir(ROOT)
    from mmengine.config import Config
    configs = {path: Config.fromfile(path) for path in (ours, *controls)}
    kind = configs[ours].model.type
    for control in controls:
        if configs[control].model.type != kind:
            parser.error(f'--control {control} builds a {configs[control].model.type}, not a '
                         f'{kind} like {ours}: give a {args.model} config')
    from efficientvit_det.mmlab.toy_runs import ensure_toy_ade, ensure_toy_coco, toy_run_options
    from efficientvit_det.fileio import atomic_path
    from efficientvit_det.benchmark.measure import machine_info
    from efficientvit_det.mmlab.scope import build_model_from_config
    data_root = args.data_root or default_root
    (ensure_toy_ade if segmentation else ensure_toy_coco)(data_root)
    out = args.out or f'benchmarks/results/toy_learning_{args.model}'
    arms = []
    document = dict(command='python ' + ' '.join([osp.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                    time=time.strftime('%Y-%m-%d %H:%M:%S'), machine=machine_info(),
                    seeds=args.seeds, data_root=data_root, cfg_options=args.cfg_options,
                    arms=arms)
    for seed in args.seeds:
        for name, config in ((OURS, ours), *((name, path) for path, name in controls.items())):
            options = toy_run_options(config, data_root, length, args.every_pass)
            options += [f'randomness.seed={seed}'] + args.cfg_options
            params = sum(p.numel() for p in
                         build_model_from_config(configs[config]).parameters()) / 1e6
            print(f'[toy_learning] {name}, seed {seed}: training {config}')
            per_iter, iters, minutes, metrics, curve = train_and_evaluate(
                config, osp.join(args.work_dir, f'{args.model}_{len(arms)}'), options)
            arms.append(dict(name=name, config=config, seed=seed, iterations=iters,
                             params_m=params, train_minutes=minutes, seconds_per_iter=per_iter,
                             metrics={k: float(v) for k, v in metrics.items()}, curve=curve))
            # written after every arm: a long run stopped midway keeps what it measured
            with atomic_path(out + '.json') as partial, open(partial, 'w') as f:
                json.dump(document, f, indent=2)
    text = tables(document, args.every_pass)
    print(text)
    with atomic_path(out + '.md') as partial, open(partial, 'w') as f:
        f.write(text + '\n')
    print(f'wrote {out}.json, {out}.md')
    return document


def tables(document, every_pass: bool = False) -> str:
    """What the run printed and writes beside its JSON (OUT.md, the text
    benchmarks/README.md quotes): the table, the curve (``every_pass``) and the
    seeds' spread where the run has them, and a line saying when, where and how it
    ran."""
    parts = [table(document)]
    if every_pass:
        parts.append(curve_table(document))
    if len(document['seeds']) > 1:
        parts.append(seed_table(document))
    machine = document['machine']
    parts.append(f"({document['time']}, {machine.get('cpu', machine['processor'])}, "
                 f"`{document['command']}`)")
    return '\n\n'.join(parts)


if __name__ == '__main__':
    from efficientvit_det.cli.common import run
    run(main)
