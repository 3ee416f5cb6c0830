"""What ``tools/train.py`` and ``tools/test.py`` do, for mmdet and mmseg configs alike
(the scope is read from the config's ``default_scope``)."""
import argparse
import json
import logging
import os
import os.path as osp
import re
import sys
import time
from typing import Iterator, List, Optional, Tuple

from .config_check import ConfigOptionError, check_config_options

DATASET_HINTS = {
    'CocoDataset': ('COCO 2017', 'data/coco/{annotations,train2017,val2017}'),
    'ADE20KDataset': ('ADE20K (ADEChallengeData2016)',
                      'data/ade/ADEChallengeData2016/{images,annotations}/{training,validation}'),
}


class DatasetNotFoundError(FileNotFoundError):
    pass


def _datasets(cfg) -> Iterator[dict]:
    """Leaf dataset configs, looking through wrappers (Repeat/Concat/ClassBalanced)."""
    if isinstance(cfg, dict):
        if 'dataset' in cfg and isinstance(cfg['dataset'], dict):
            yield from _datasets(cfg['dataset'])
        elif 'datasets' in cfg:
            for sub in cfg['datasets']:
                yield from _datasets(sub)
        else:
            yield cfg


def _join(root: str, path: str) -> str:
    return path if osp.isabs(path) or not root else osp.join(root, path)


def expected_paths(dataset: dict) -> List[str]:
    root = dataset.get('data_root', '') or ''
    paths = []
    if dataset.get('ann_file'):
        paths.append(_join(root, dataset['ann_file']))
    for prefix in (dataset.get('data_prefix') or {}).values():
        if isinstance(prefix, str) and prefix:
            paths.append(_join(root, prefix))
    if not paths and root:
        paths.append(root)
    return paths


class DatasetError(ValueError):
    """The annotations are inconsistent (found before any worker starts)."""


class WorkDirInUseError(FileExistsError):
    """The work dir holds another run's checkpoints, which training would overwrite."""


class NothingToResumeError(FileNotFoundError):
    """``--resume`` without a checkpoint, in a work dir that holds none."""


#: the names mmengine's CheckpointHook gives checkpoints
CHECKPOINT_NAME = re.compile(r'(epoch|iter)_(\d+)\.pth')


#: annotation files up to this size get the full consistency check
DEEP_CHECK_BYTES = 100 * 2 ** 20


def check_coco_annotations(ann_file: str, image_dir: str, split: str,
                           with_masks: bool = False) -> None:
    """Catch what would otherwise crash deep inside mmdet / a dataloader worker, and
    say what mmdet will do with annotations it drops or changes."""
    from mmengine.logging import print_log
    if osp.getsize(ann_file) > DEEP_CHECK_BYTES:
        print_log(f'{ann_file}: large file, annotation consistency check skipped',
                  logger='current', level=logging.INFO)
        return
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetError(f'{ann_file} is not valid JSON: {err}') from None
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise DatasetError(f'{ann_file} has no "{key}" list: not a COCO instances file')
    if not coco['annotations']:
        raise DatasetError(f'{ann_file} ({split} split) has an empty "annotations" list: '
                           'nothing to train on or evaluate against')
    categories = {c['id'] for c in coco['categories']}
    images = {i['id']: i for i in coco['images']}
    bad_category = [a for a in coco['annotations'] if a.get('category_id') not in categories]
    if bad_category:
        raise DatasetError(
            f'{ann_file}: {len(bad_category)} annotation(s) use a category id missing from '
            f'"categories" {sorted(categories)}, e.g. annotation {bad_category[0].get("id")} '
            f'with category_id={bad_category[0].get("category_id")}')
    orphans = [a for a in coco['annotations'] if a.get('image_id') not in images]
    if orphans:
        raise DatasetError(f'{ann_file}: {len(orphans)} annotation(s) point at image ids not in '
                           f'"images", e.g. annotation {orphans[0].get("id")} -> image_id='
                           f'{orphans[0].get("image_id")}')
    _check_geometry(ann_file, coco['annotations'], images, with_masks)
    _check_image_files(ann_file, coco['images'], image_dir, split)


def _ids(annotations: list) -> str:
    shown = ', '.join(str(a.get('id')) for a in annotations[:5])
    return shown + (', ...' if len(annotations) > 5 else '')


def _check_geometry(ann_file: str, annotations: list, images: dict, with_masks: bool) -> None:
    """mmdet's CocoDataset drops boxes under 1 px, of zero area or outside their image,
    and Resize clips boxes that extend beyond it; an annotation without a box or an
    area, or (for mask training) without a segmentation, crashes a worker."""
    from mmengine.logging import print_log
    unusable, dropped, outside, clipped = [], [], [], []
    for ann in annotations:
        if ann.get('ignore', False):  # mmdet skips these before reading anything
            continue
        box = ann.get('bbox')
        if not (isinstance(box, (list, tuple)) and len(box) == 4) or 'area' not in ann:
            unusable.append((ann, 'no "bbox" [x, y, w, h] or no "area"'))
            continue
        x, y, w, h = box
        image = images[ann['image_id']]
        if 'width' not in image or 'height' not in image:
            raise DatasetError(f'{ann_file}: image {image["id"]} ({image.get("file_name")}) '
                               'has no "width" / "height"')
        inside_w = min(x + w, image['width']) - max(x, 0)
        inside_h = min(y + h, image['height']) - max(y, 0)
        if inside_w <= 0 or inside_h <= 0:
            outside.append(ann)
        elif ann['area'] <= 0 or w < 1 or h < 1:
            dropped.append(ann)
        else:
            if x < 0 or y < 0 or x + w > image['width'] or y + h > image['height']:
                clipped.append(ann)
            if with_masks and not ann.get('segmentation'):
                unusable.append((ann, 'an empty "segmentation" (mask training needs one)'))
    if unusable:
        ann, why = unusable[0]
        raise DatasetError(
            f'{ann_file}: {len(unusable)} annotation(s) cannot be loaded, e.g. annotation '
            f'{ann.get("id")} (image_id={ann.get("image_id")}) has {why}; ids: '
            f'{_ids([a for a, _ in unusable])}. Fix them or remove them from the file.')
    for found, fate in ((dropped, 'have a box under 1 px or zero area: mmdet drops them'),
                        (outside, 'lie outside their image: mmdet drops them'),
                        (clipped, 'extend beyond their image: their boxes are clipped to it')):
        if found:
            print_log(f'{ann_file}: {len(found)} annotation(s) {fate} (ids {_ids(found)})',
                      logger='current', level=logging.WARNING)


def _check_image_files(ann_file: str, image_infos: list, image_dir: str, split: str) -> None:
    from mmengine.logging import print_log
    names = [i['file_name'] for i in image_infos]
    missing = [n for n in names if not osp.exists(osp.join(image_dir, n))]
    if missing:
        raise DatasetError(f'{ann_file}: {len(missing)} image file(s) listed but not found '
                           f'under {image_dir}, e.g. {missing[0]}')
    paths = [osp.join(image_dir, n) for n in names]
    empty = [p for p in paths if osp.getsize(p) == 0]
    if not empty:
        return
    shown = ', '.join(empty[:3]) + (', ...' if len(empty) > 3 else '')
    if split == 'train':
        print_log(f'{ann_file}: {len(empty)} image file(s) are empty (0 bytes) and will be '
                  f'skipped in training: {shown}', logger='current', level=logging.WARNING)
        return
    raise DatasetError(f'{ann_file}: {len(empty)} image file(s) are empty (0 bytes), so the '
                       f'{split} split cannot be evaluated: {shown}. Replace them or remove '
                       'them from the file.')


def check_dataset_paths(cfg, splits: Tuple[str, ...]) -> None:
    """Fail early, naming the first missing path and how to point elsewhere, and
    check small COCO annotation files for consistency."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in _datasets(loader.get('dataset')):
            for path in expected_paths(dataset):
                if not osp.exists(path):
                    raise DatasetNotFoundError(_missing_message(split, dataset, path))
            if dataset.get('type') == 'CocoDataset' and dataset.get('ann_file'):
                root = dataset.get('data_root', '') or ''
                image_dir = _join(root, (dataset.get('data_prefix') or {}).get('img', ''))
                check_coco_annotations(_join(root, dataset['ann_file']), image_dir, split,
                                       with_masks=_loads_masks(dataset))
        evaluator = cfg.get(f'{split}_evaluator')
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
            if ann_file and not osp.exists(ann_file):
                raise DatasetNotFoundError(
                    f'{split}_evaluator annotation file not found: {ann_file}\n'
                    f'Point it at yours: --cfg-options {split}_evaluator.ann_file=PATH')


def _loads_masks(dataset: dict) -> bool:
    return any(isinstance(t, dict) and t.get('type') == 'LoadAnnotations' and t.get('with_mask')
               for t in dataset.get('pipeline') or [])


def _missing_message(split: str, dataset: dict, path: str) -> str:
    kind = dataset.get('type', 'dataset')
    name, layout = DATASET_HINTS.get(kind, (kind, None))
    lines = [f'{name} not found: {path} (needed by {split}_dataloader, {kind} with '
             f'data_root={dataset.get("data_root")!r}).']
    if layout:
        lines.append(f'Expected layout: {layout}.')
    keys = ' '.join(f'{s}_dataloader.dataset.data_root=/your/root/' for s in ('train', 'val', 'test'))
    lines.append(f'Put the dataset there, or point the config at another root: --cfg-options {keys}')
    if kind == 'CocoDataset':
        lines.append('(and val_evaluator.ann_file=... test_evaluator.ann_file=... for COCO metrics)')
    lines.append('No dataset at hand? `make demo` trains on a generated toy dataset.')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- shared setup

def _common_args(parser: argparse.ArgumentParser):
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. train_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='distributed launcher (pytorch = torchrun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _load_config(args):
    from mmengine.config import Config
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.launcher == 'pytorch' and not _cuda_available():
        _prepare_cpu_distributed(cfg)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if cfg.get('visualizer'):
        # mmengine hands back an existing visualizer of the same name, so a second
        # run in one process (notebook, tests) would log into the first run's folder
        cfg.visualizer.name = f'visualizer_{time.time_ns()}'
    return cfg


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _prepare_cpu_distributed(cfg) -> None:
    """DDP on CPU (gloo). mmengine's own init calls ``torch.cuda.set_device`` and
    gives DDP ``device_ids``, both wrong without a GPU: start the process group
    here (mmengine then keeps it) and wrap the model without device ids."""
    import torch.distributed as dist
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False,
                                 find_unused_parameters=cfg.get('find_unused_parameters', False))
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def leave_process_group() -> None:
    """End a distributed run's process group while Python is still whole: gloo's
    worker threads left to interpreter shutdown abort the process now and then
    (SIGABRT, 'terminate called without an active exception') after a run that
    succeeded, and torchrun then reports the whole job failed."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


# ----------------------------------------------------------------------------- train

def train_main(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or from the latest checkpoint in the work '
                        'dir when no CKPT is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--overwrite', action='store_true',
                        help="train into a work dir that holds an earlier run's checkpoints, "
                        'replacing them')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the config's lr linearly from auto_scale_lr.base_batch_size "
                        'to the actual total batch (GPUs x batch per GPU); off by default, '
                        "as in mmdet's tools")
    _common_args(parser)
    args = parser.parse_args(argv)
    cfg = _load_config(args)
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            parser.error(f'{args.config} sets no auto_scale_lr.base_batch_size to scale from')
        cfg.auto_scale_lr.enable = True
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, newest_complete_checkpoint(cfg.work_dir)
        print(f'resuming from {cfg.load_from}, the newest complete checkpoint in '
              f'{cfg.work_dir}', flush=True)
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    elif not args.overwrite:
        check_work_dir_unused(cfg.work_dir)
    check_config_options(cfg, ('train', 'val'))
    check_dataset_paths(cfg, ('train', 'val'))
    skip_unreadable_training_images(cfg)
    if args.overwrite and args.resume is None:
        remove_earlier_checkpoints(cfg.work_dir)
    runner = _build_runner(cfg)
    runner.train()
    return runner


def remove_earlier_checkpoints(work_dir: str) -> None:
    """``--overwrite``, once the config and data have passed their checks: an earlier
    run's checkpoints go, so that none of them (an ``epoch_12.pth`` beside this run's
    ``epoch_1.pth``) is later taken for this run's newest."""
    if not osp.isdir(work_dir):
        return
    earlier = sorted(name for name in os.listdir(work_dir)
                     if CHECKPOINT_NAME.fullmatch(name) or name == 'last_checkpoint')
    for name in earlier:
        os.remove(osp.join(work_dir, name))
    if earlier:
        print(f'--overwrite: removed the earlier run\'s {", ".join(earlier)} from {work_dir}',
              flush=True)


def skip_unreadable_training_images(cfg) -> None:
    """Training draws another image when one cannot be read (the loader names it);
    evaluation keeps failing on it, naming it, since skipping would change the metric."""
    for dataset in _datasets(cfg.train_dataloader.get('dataset')):
        for transform in dataset.get('pipeline') or []:
            if isinstance(transform, dict) and str(transform.get('type')).rsplit(
                    '.', 1)[-1] == 'LoadImageFromFile':  # 'mmdet.LoadImageFromFile' too
                transform['ignore_empty'] = True


def newest_complete_checkpoint(work_dir: str) -> str:
    """The highest-numbered ``epoch_N.pth`` / ``iter_N.pth`` in ``work_dir``, or the
    file ``last_checkpoint`` names when none is numbered. Checkpoints are only ever
    renamed into place complete, so any that exists is whole; a kill between that
    rename and the update of ``last_checkpoint`` leaves the pointer one behind,
    which is why the numbers decide."""
    numbered = [(m.group(1) == 'iter', int(m.group(2)), osp.join(work_dir, m.group(0)))
                for m in map(CHECKPOINT_NAME.fullmatch, sorted(os.listdir(work_dir))
                             if osp.isdir(work_dir) else []) if m]
    if numbered:
        return max(numbered)[2]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        for path in (named, osp.join(work_dir, osp.basename(named))):
            if named and osp.isfile(path):
                return path
    raise NothingToResumeError(f'--resume: {work_dir} holds no checkpoint to resume from; '
                               'train without --resume, or pass --resume CHECKPOINT')


def check_work_dir_unused(work_dir: str) -> None:
    """A new run must not silently replace an earlier run's checkpoints."""
    if not osp.isdir(work_dir):
        return
    found = sorted(name for name in os.listdir(work_dir)
                   if name.endswith('.pth') or name == 'last_checkpoint')
    if found:
        shown = ', '.join(found[:4]) + (', ...' if len(found) > 4 else '')
        raise WorkDirInUseError(
            f'{work_dir} already holds checkpoints of an earlier run ({shown}). Continue '
            'it with --resume, train into another --work-dir, or pass --overwrite to '
            'replace them.')


# ----------------------------------------------------------------------------- test

def test_main(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description='Evaluate a detector (COCO mAP) or a '
                                     'segmentor (mIoU) checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='detection: dump predictions to this .pkl; '
                        'segmentation: write predicted label maps into this folder')
    parser.add_argument('--show-dir', help='save images with drawn predictions here')
    _common_args(parser)
    args = parser.parse_args(argv)
    cfg = _load_config(args)
    cfg.load_from = None  # loaded below, strictly, in either layout
    scope = cfg.get('default_scope', 'mmdet')
    if args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw = True
        if scope == 'mmdet':
            hook.test_out_dir = osp.abspath(args.show_dir)
        else:
            hook.interval = 1
            cfg.visualizer.save_dir = osp.abspath(args.show_dir)
    if args.out:
        if scope == 'mmdet':
            if not args.out.endswith(('.pkl', '.pickle')):
                raise ValueError(f'--out must be a .pkl file for detection, got {args.out}')
            evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
                else [cfg.test_evaluator]
            cfg.test_evaluator = evaluators + [dict(type='DumpDetResults',
                                                    out_file_path=args.out)]
        else:
            cfg.test_evaluator.update(output_dir=args.out)
    check_config_options(cfg, ('test',))
    check_dataset_paths(cfg, ('test',))
    runner = _build_runner(cfg)
    load_into_runner(runner, args.checkpoint)
    metrics = runner.test()
    print(format_metrics(metrics))
    return metrics


def load_into_runner(runner, spec: str) -> None:
    """Load a whole-model checkpoint (ours, or a paper's official COCO release,
    converted) strictly: a checkpoint that does not fit stops the tool, naming keys."""
    from mmengine.logging import print_log
    from mmengine.model import is_model_wrapper

    from .checkpoints import load_model_checkpoint
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    layout = load_model_checkpoint(model, spec)
    print_log(f'Loaded {spec} ({layout} layout)', logger='current')


def format_metrics(metrics: dict) -> str:
    width = max((len(k) for k in metrics), default=10)
    rows = [f'{"metric":<{width}}  value', f'{"-" * width}  -------']
    for key, value in metrics.items():
        rows.append(f'{key:<{width}}  {value:.4f}' if isinstance(value, float)
                    else f'{key:<{width}}  {value}')
    return '\n'.join(rows)


def at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum`` (a count of 0 would
    otherwise fail only when a run reaches it, or mean something else)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'{value} is too small: at least {minimum}')
        return value
    return parse


def run(main) -> None:
    """Run a CLI entry point; a missing dataset or a checkpoint that cannot be
    used ends with its message, not a traceback; SIGTERM (a scheduler's stop)
    exits through the cleanup, so no partial checkpoint is left."""
    from .checkpoints import (CheckpointDownloadError, CheckpointMismatchError,
                              UnsafeCheckpointError)
    from .fileio import exit_cleanly_on_sigterm
    from .model_index import UnknownModelError
    exit_cleanly_on_sigterm()
    try:
        main()
        leave_process_group()
    except (DatasetNotFoundError, DatasetError, WorkDirInUseError, NothingToResumeError,
            ConfigOptionError, CheckpointMismatchError, CheckpointDownloadError,
            UnsafeCheckpointError, UnknownModelError) as err:
        sys.exit(f'error: {err}')
