"""Training-runtime pieces for mmengine (imported only where mmengine/mmcv exist).

* ``atomic_local`` file backend: checkpoints and ``last_checkpoint`` are written
  to a temporary file and renamed, so a job killed mid-save never leaves a
  half-written checkpoint behind;
* ``RNGStateHook``: stores the torch / numpy / python RNG states in checkpoints
  and restores them on ``--resume``, so a resumed run draws the same random
  numbers (RoI sampling, augmentation) as an uninterrupted one;
* ``RankConsistencyHook``: after distributed training, checks that every rank
  holds the same weights;
* ``StrictLoadHook``: ``load_from`` / ``--resume`` checkpoints must fit the whole
  model exactly (mmengine itself loads what matches and only warns);
* ``LoadImageOrSkip``: image loading that names unreadable files, and in
  training logs and skips them instead of crashing a worker.
"""
import json
import logging
import os
import os.path as osp
import random

import numpy as np
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine.dist import all_gather_object, get_rank, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from .fileio import atomic_path


class AtomicLocalBackend(LocalBackend):
    """Local files written atomically (temporary file in the same folder + rename)."""

    def put(self, obj: bytes, filepath) -> None:
        self._write(filepath, obj, 'wb')

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self._write(filepath, obj, 'w', encoding=encoding)

    @staticmethod
    def _write(filepath, obj, mode, encoding=None):
        with atomic_path(filepath) as partial, open(partial, mode, encoding=encoding) as f:
            f.write(obj)
            f.flush()
            os.fsync(f.fileno())


class RNGStateHook(Hook):
    """Carry the random number generators' states through checkpoints.

    States are stored as plain lists/ints so checkpoints stay loadable with
    ``weights_only=True``.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        name, keys, position, has_gauss, gauss = np.random.get_state()
        checkpoint.setdefault('meta', {})['rng_state'] = dict(
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            numpy=[name, keys.tolist(), int(position), int(has_gauss), float(gauss)],
            python=_listify(random.getstate()))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('rng_state')
        if state is None or not getattr(runner, '_resume', False):
            return
        torch.set_rng_state(state['torch'])
        if torch.cuda.is_available() and state['cuda']:
            torch.cuda.set_rng_state_all(state['cuda'])
        name, keys, position, has_gauss, gauss = state['numpy']
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
        random.setstate(_tuplify(state['python']))
        print_log('restored RNG states from the checkpoint', logger='current')


def _listify(value):
    return [_listify(v) for v in value] if isinstance(value, tuple) else value


def _tuplify(value):
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


class RankConsistencyHook(Hook):
    """After training, compare a checksum of every parameter across ranks.

    Writes ``rank_consistency.json`` into the work dir and raises if the ranks
    disagree (a broken gradient all-reduce would otherwise go unnoticed).
    BatchNorm running statistics are not compared: DDP broadcasts them from
    rank 0 at the start of each forward, so after the last step they differ.
    """

    def after_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        checksums = {name: float(p.detach().double().sum())
                     for name, p in model.named_parameters()}
        gathered = all_gather_object(checksums)
        agree = all(other == gathered[0] for other in gathered)
        if is_main_process():
            with open(osp.join(runner.work_dir, 'rank_consistency.json'), 'w') as f:
                json.dump(dict(ranks=len(gathered), agree=agree,
                               checksum=[sum(c.values()) for c in gathered]), f, indent=2)
        if not agree:
            raise RuntimeError(f'rank {get_rank()}: model weights differ across ranks')


class StrictLoadHook(Hook):
    """Stop when a ``load_from`` / ``--resume`` checkpoint does not fit the model.

    mmengine loads the keys that match and logs a warning for the rest, so another
    variant's checkpoint or a backbone-only file would train or evaluate a
    half-random model. This runs on the loaded checkpoint before its weights go
    into the model and raises ``CheckpointMismatchError`` naming the keys.
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        from .checkpoints import adapt_to_model, model_state_dict
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        source = runner._load_from or f'the latest checkpoint in {runner.work_dir}'
        adapt_to_model(model, model_state_dict(checkpoint), 'efficientvit_det', source=source,
                       resize_biases=False)


class LoadImageOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` that names unreadable (missing / corrupt) images.

    ``skip_unreadable=True`` (training pipelines) logs a warning and returns
    None, so the dataset draws another sample; otherwise (testing) it raises an
    ``IOError`` naming the file instead of an assertion deep in a worker.
    """

    def __init__(self, skip_unreadable: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.skip_unreadable = skip_unreadable

    def transform(self, results: dict):
        filename = results['img_path']
        try:
            loaded = super().transform(results)
        except (OSError, AssertionError, ValueError) as err:
            loaded, reason = None, f'{type(err).__name__}: {err}'
        else:
            reason = 'not an image or corrupt'
        if loaded is not None:
            return loaded
        message = f'cannot read image {filename} ({reason})'
        if self.skip_unreadable:
            print_log(f'{message}: skipped', logger='current', level=logging.WARNING)
            return None
        raise IOError(message)


def register() -> None:
    from mmengine.fileio import register_backend
    from mmengine.registry import HOOKS, TRANSFORMS
    register_backend('atomic_local', AtomicLocalBackend, force=True)
    for hook in (RNGStateHook, RankConsistencyHook, StrictLoadHook):
        HOOKS.register_module(module=hook, force=True)
    TRANSFORMS.register_module(module=LoadImageOrSkip, force=True)
