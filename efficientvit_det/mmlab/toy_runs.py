"""Runs on the built-in toy datasets: generating them where absent, and the
``--cfg-options`` that point a toy config at them for a given length (the demo,
the tests and ``benchmarks/toy_learning.py`` share these)."""
import math
import os
import os.path as osp
from typing import List, Optional

from ..errors import DatasetError
from .toy_data import (BENCHMARK_PROFILE, CocoToyProfile, make_ade_toy, make_coco_toy,
                       toy_coco_mismatch, toy_coco_splits)


def ensure_toy_coco(root: str, profile: CocoToyProfile = BENCHMARK_PROFILE) -> None:
    """Generate the toy COCO dataset of ``profile`` at ``root`` unless it is already
    there (older toy data is regenerated; a dataset that is not toy data is used as
    is, and a folder holding other files is never written into)."""
    mismatch = toy_coco_mismatch(root, profile)
    if mismatch is None:
        print(f'[demo] toy COCO dataset found at {root}{_split_note(root, profile)}')
        return
    print(f'[demo] generating the {profile.name} toy COCO dataset at {root} ({mismatch}) ...')
    make_coco_toy(root, profile=profile)


def _split_note(root: str, profile: CocoToyProfile) -> str:
    """The split sizes of toy data found at ``root``, flagged when they are not the
    profile's (tools/make_toy_data.py --val-images writes larger splits): README's
    demo numbers are scored on the profile's val split."""
    splits = toy_coco_splits(root)
    if splits is None:
        return ''
    note = f' ({splits[0]} training / {splits[1]} val images'
    if splits != (profile.num_train, profile.num_val):
        note += (f'; not the {profile.name} profile\'s {profile.num_train} / '
                 f"{profile.num_val} that README's numbers are scored on: python "
                 f'tools/make_toy_data.py --datasets coco --profile {profile.name} '
                 f'--coco {root} writes them')
    return note + ')'


def toy_run_options(config: str, data_root: str, length: Optional[int] = None,
                    every_pass: bool = False) -> List[str]:
    """``--cfg-options`` that train the toy ``config`` on the toy data at ``data_root``
    for ``length`` (default: the config's) passes (an epoch loop: the detectors) or
    iterations (an iteration loop: the Semantic FPN), with every lr schedule that
    ends with training made to end with it, and evaluate once, afterwards (or, with
    ``every_pass``, after every pass over the training images too: a learning curve)."""
    from .scope import read_config
    cfg = read_config(config)
    root = data_root.rstrip('/') + '/'
    options = [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]
    if 'ann_file' in cfg.val_evaluator:  # COCO
        options += [f'{split}_evaluator.ann_file={root}annotations/instances_val.json'
                    for split in ('val', 'test')]
    by_epoch = 'max_epochs' in cfg.train_cfg
    unit = 'max_epochs' if by_epoch else 'max_iters'
    configured = cfg.train_cfg[unit]
    length = configured if length is None else length
    for index, scheduler in enumerate(cfg.param_scheduler):
        if scheduler.get('by_epoch', True) == by_epoch and scheduler.get('end') == configured:
            options.append(f'param_scheduler.{index}.end={length}')
            if 'T_max' in scheduler:
                options.append(f'param_scheduler.{index}.T_max={length}')
    # evaluate once, after training (below), not also inside the training loop (which
    # validates at its end whatever the interval, unless it starts later)
    first_evaluation = length + 1
    if every_pass:
        first_evaluation = 1 if by_epoch else _iterations_per_pass(cfg, root)
    return options + [f'train_cfg.{unit}={length}', f'train_cfg.val_interval={first_evaluation}',
                      f'train_cfg.val_begin={first_evaluation}']


def _iterations_per_pass(cfg, root: str) -> int:
    """Iterations per pass over an ADE20K-format training split (its label maps)."""
    labels = osp.join(root, 'annotations', 'training')
    images = len(os.listdir(labels)) if osp.isdir(labels) else 0
    if not images:
        raise DatasetError(f'{labels} holds no label maps')
    return math.ceil(images / cfg.train_dataloader.batch_size)


def ensure_toy_ade(root: str) -> None:
    """Generate the built-in toy ADE20K dataset at ``root`` unless one is there; a
    folder that holds something else (or half a dataset) is left as it is."""
    labels = osp.join(root, 'annotations', 'training')
    if all(osp.isdir(osp.join(root, 'annotations', split)) for split in ('training', 'validation')):
        print(f'[demo] toy ADE20K dataset found at {root} ({len(os.listdir(labels))} training '
              'images; tools/make_toy_data.py writes the current one)')
        return
    if osp.isdir(root) and os.listdir(root):
        raise DatasetError(f'{root} is not empty and holds no ADE20K-format dataset '
                           '(annotations/training and annotations/validation): pass another '
                           '--data-root, or remove the folder to have the toy data written there')
    print(f'[demo] generating the toy ADE20K dataset at {root} ...')
    make_ade_toy(root)
