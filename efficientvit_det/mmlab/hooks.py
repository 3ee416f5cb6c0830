"""Hooks and the checkpoint file backend our configs ask for by name.

* ``atomic_local`` file backend: checkpoints are written to a temporary file and
  renamed, so a job killed mid-save never leaves a half-written checkpoint behind;
* ``SafeCheckpointHook``: mmengine's ``CheckpointHook`` in a crash-safe order
  (new checkpoint complete, then ``last_checkpoint``, then old ones deleted) and
  removing partial files a killed run left;
* ``RNGStateHook``: stores the torch / numpy / python RNG states in checkpoints
  and restores them on ``--resume``, so a resumed run draws the same random
  numbers (RoI sampling, augmentation) as an uninterrupted one;
* ``RankConsistencyHook``: after distributed training, checks that every rank
  holds the same weights;
* ``StrictLoadHook``: ``load_from`` / ``--resume`` checkpoints must fit the whole
  model exactly (mmengine itself loads what matches and only warns);
* ``PyramidStrideCheckHook``: the neck feeds every head the strides it reads
  (our tools check this themselves; the hook is for other tools' runs);
* ``FiniteLossHook``: training stops at the first NaN or inf loss, naming the
  terms, before a checkpoint of broken weights is saved.
"""
import json
import logging
import math
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from ..checkpoints import adapt_to_model, model_state_dict
from ..errors import NonFiniteLossError
from ..fileio import atomic_path, remove_partial_files
from .pyramid import check_pyramid_strides
from .scope import unwrap_model


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


class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never loses a complete checkpoint when killed.

    mmengine deletes the oldest kept checkpoint (``max_keep_ckpts``) *before*
    writing the new one and rewrites ``last_checkpoint`` in place, so a kill during
    the save costs a checkpoint. Here the new file is written first (atomically,
    with the ``atomic_local`` backend), then ``last_checkpoint`` is replaced
    atomically, and only then are outdated checkpoints deleted. At the start of
    training, partial files left by a killed save are removed.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        for folder in {runner.work_dir, self.out_dir}:
            for path in remove_partial_files(folder):
                print_log(f'removed {path}, left by an interrupted checkpoint write',
                          logger='current', level=logging.WARNING)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            # saved inside the new checkpoint: a resumed run keeps deleting in order
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        with atomic_path(osp.join(runner.work_dir, 'last_checkpoint')) as partial:
            with open(partial, 'w') as f:
                f.write(self.last_ckpt)
        for old_step in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old_step))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)


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
        if state is None or not runner.cfg.get('resume', False):
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
        model = unwrap_model(runner.model)
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
        model = unwrap_model(runner.model)
        source = runner.cfg.get('load_from') or f'the latest checkpoint in {runner.work_dir}'
        adapt_to_model(model, model_state_dict(checkpoint), 'efficientvit_det', source=source,
                       resize_biases=False)


class FiniteLossHook(Hook):
    """Stop at the first iteration whose loss terms are not all finite, naming them.
    mmengine logs ``loss: nan`` every iteration, saves checkpoints of NaN weights
    and exits 0; mmdet's ``CheckInvalidLossHook`` looks every 50 iterations only and
    ends in an assertion. Runs before the checkpoint hook of the same iteration."""
    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        scalars = {name: float(value.detach() if isinstance(value, torch.Tensor) else value)
                   for name, value in (outputs or {}).items()
                   if isinstance(value, float)
                   or isinstance(value, torch.Tensor) and value.numel() == 1}
        broken = {name: value for name, value in scalars.items() if not math.isfinite(value)}
        if broken:
            terms = ', '.join(f'{name}={value}' for name, value in broken.items())
            raise NonFiniteLossError(
                f'iteration {runner.iter + 1}: the loss went non-finite ({terms}); stopped '
                'before saving these weights. Lower the learning rate '
                '(optim_wrapper.optimizer.lr), clip gradients '
                '(optim_wrapper.clip_grad=dict(max_norm=...)), or check the data')


class PyramidStrideCheckHook(Hook):
    """The pyramid-stride check on the runner's model before anything else runs,
    for configs trained or tested by other tools than ours."""
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        check_pyramid_strides(unwrap_model(runner.model))
