"""Our classes added to the OpenMMLab registries, and nothing else.

mmdet's ``projects/`` and mmpretrain do it this way: a class of ours goes in under
its own name; nothing mmdet, mmseg, mmengine or mmcv installed is wrapped or
replaced, so importing this package cannot change how anyone else's model is
built, loaded or fed. What used to be implicit is asked for by name: the
``safe:`` / ``release:`` checkpoint schemes, the ``atomic_local`` file backend,
the hooks and ``LoadImageOrSkip`` in our configs, and the pyramid-stride check
our tools run (:func:`~efficientvit_det.mmlab.pyramid.check_pyramid_strides`).
"""
import importlib
from typing import List

from ..checkpoints import read_checkpoint
from ..errors import RegistryConflictError
from ..models import BACKBONES
from ..models.neck import PyramidAdapter, TransposedFPN
from ..models.timm_backbone import TimmBackbone
from .hooks import (AtomicLocalBackend, FiniteLossHook, PyramidStrideCheckHook,
                    RankConsistencyHook, RNGStateHook, SafeCheckpointHook, StrictLoadHook)
from .transforms import LoadImageOrSkip

#: the task scopes whose registries get our models, transforms and metrics
TASK_SCOPES = ('mmdet', 'mmseg')
#: checkpoint schemes of ours: ``release:<name>`` (the papers' files) and ``safe:<path>``
#: (any local file through the allow-list loader, official layouts converted)
CHECKPOINT_SCHEMES = ('release:', 'safe:')
MODEL_CLASSES = dict(BACKBONES, TransposedFPN=TransposedFPN, PyramidAdapter=PyramidAdapter,
                     TimmBackbone=TimmBackbone)
HOOK_CLASSES = (SafeCheckpointHook, RNGStateHook, RankConsistencyHook, StrictLoadHook,
                FiniteLossHook, PyramidStrideCheckHook)


def _add(registry, cls, name=None) -> None:
    """Register ``cls`` unless it is there; an earlier copy of our own class (a
    reloaded module) is replaced, anyone else's name is never taken over."""
    name = name or cls.__name__
    # module_dict, not get(): get() first imports the whole scope (mmdet.models, ...),
    # ~10 s that every importer of this package would pay; a class of theirs
    # registered later under one of our names is refused by mmengine there
    found = registry.module_dict.get(name)
    if found is cls:
        return
    if found is not None and not found.__module__.startswith('efficientvit_det.'):
        raise RegistryConflictError(
            f'{registry.scope} registry {registry.name!r} already has {name!r} '
            f'({found.__module__}); efficientvit_det does not replace it')
    registry.register_module(name=name, module=cls, force=found is not None)


def _load_scheme(filename, map_location):
    """A ``safe:`` / ``release:`` checkpoint for mmengine's ``load_checkpoint``."""
    spec = filename[len('safe:'):] if filename.startswith('safe:') else filename
    return read_checkpoint(spec, map_location)


def register_all() -> List[str]:
    """Add our classes to every installed OpenMMLab registry (idempotent); returns
    the task scopes found."""
    from mmengine.fileio import register_backend
    from mmengine.registry import HOOKS
    from mmengine.runner.checkpoint import CheckpointLoader
    for hook in HOOK_CLASSES:
        _add(HOOKS, hook)
    # a backend and schemes of our own names: registered once per process (a second
    # import finds them there, and mmengine's public API cannot tell whose they are)
    try:
        register_backend('atomic_local', AtomicLocalBackend)
    except ValueError:  # "already registered"
        pass
    for prefix in CHECKPOINT_SCHEMES:
        try:
            CheckpointLoader.register_scheme(prefixes=prefix, loader=_load_scheme)
        except KeyError:
            pass
    scopes = []
    for scope in TASK_SCOPES:
        try:
            registry = importlib.import_module(f'{scope}.registry')
        except ImportError:
            continue
        for name, cls in MODEL_CLASSES.items():
            _add(registry.MODELS, cls, name)
        _add(registry.TRANSFORMS, LoadImageOrSkip)
        if scope == 'mmseg':
            from .metrics import ClassIoUMetric
            _add(registry.METRICS, ClassIoUMetric)
        scopes.append(scope)
    return scopes
