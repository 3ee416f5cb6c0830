"""Configs into runners: the work dir, the launcher (DDP on CPU included), the
pyramid check on the built model, strict loading of a whole-model checkpoint, and
leaving the process group cleanly."""
import os
import os.path as osp
import re
import time
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

from ..checkpoints import load_model_checkpoint
from .pyramid import check_pyramid_strides
from .scope import config_typos_named, read_config, unwrap_model


def load_config(config: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None, local_rank: int = 0) -> Config:
    """The config with its overrides, launcher and work dir (default:
    ``./work_dirs/<config name>``)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
    cfg = read_config(config)
    cfg.merge_from_dict(cfg_options or {})
    cfg.launcher = launcher
    if launcher == 'pytorch' and not torch.cuda.is_available():
        _prepare_cpu_distributed(cfg)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    if cfg.get('visualizer'):
        # mmengine hands back an existing visualizer of the same name, so a second
        # run in one process (notebook, tests) would log into the first run's folder
        cfg.visualizer.name = f'visualizer_{time.time_ns()}'
    return cfg


def _prepare_cpu_distributed(cfg) -> None:
    """DDP on CPU (gloo). mmengine's own init calls ``torch.cuda.set_device`` and
    gives DDP ``device_ids``, both wrong without a GPU: start the process group
    here (mmengine then keeps it) and wrap the model without device ids."""
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
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def build_runner(cfg):
    """mmengine's runner for ``cfg``, its model's pyramid strides checked."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    with config_typos_named():
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    check_pyramid_strides(unwrap_model(runner.model))
    return runner


def load_into_runner(runner, spec: str) -> None:
    """Load a whole-model checkpoint (ours, or a paper's official COCO release,
    converted) strictly: a checkpoint that does not fit stops the tool, naming keys."""
    layout = load_model_checkpoint(unwrap_model(runner.model), spec)
    print_log(f'Loaded {spec} ({layout} layout)', logger='current')


def safe_checkpoint_spec(spec: str) -> str:
    """``spec`` for mmengine's ``load_from`` / ``resume``, read through our allow-list
    loader (official detector layouts converted): a local path or a ``hub:`` name
    gets the ``safe:`` scheme; URLs and ``release:`` / ``safe:`` names stay."""
    if spec.startswith(('release:', 'safe:')) or re.match(r'[a-z][a-z0-9+.-]*://', spec):
        return spec
    return 'safe:' + spec
