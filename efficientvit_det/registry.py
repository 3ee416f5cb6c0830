"""The thin OpenMMLab layer on top of the pure-torch models.

* registers the models in mmdet's and mmseg's ``MODELS`` registries (the same
  class objects in both);
* checks at build time that a detector's / segmentor's pyramid strides match
  what its heads expect (the mistake that makes a stride-16/32/64 backbone
  behind a stock FPN train without learning anything);
* makes mmengine load local checkpoints through the safe allow-list loader.

Each part is skipped when its package is not installed, so the backbones stay
usable where only torch is (the latency tool on a GPU machine without mmcv).
"""
import functools
import importlib
import os
from typing import List, Optional

from .models import BACKBONES
from .models.neck import TransposedFPN
from .models.timm_backbone import TimmBackbone

OPENMMLAB_REGISTRIES = ('mmdet.registry', 'mmseg.registry')
NECK_ADVICE = ('SHViT / EfficientViT / UniForm emit strides 16/32/64 only: use '
               'TransposedFPN with num_extra_trans_convs=2 for strides 4-64 (Mask R-CNN, '
               'Semantic FPN) or num_extra_trans_convs=1 plus add_extra_convs for 8-128 '
               '(RetinaNet).')


class PyramidStrideError(ValueError):
    """The neck's output strides do not match the strides the heads expect."""


def registered_modules():
    """Every class this project puts into the OpenMMLab ``MODELS`` registries."""
    return dict(BACKBONES, TransposedFPN=TransposedFPN, TimmBackbone=TimmBackbone)


# ----------------------------------------------------------------------------- stride check

def backbone_strides(backbone) -> Optional[List[int]]:
    info = getattr(backbone, 'feature_info', None)
    if isinstance(info, list) and info and all('reduction' in f for f in info):
        return [int(f['reduction']) for f in info]
    return None  # a backbone we know nothing about (ResNet, ...): not checked


def neck_strides(neck, in_strides: List[int]) -> Optional[List[int]]:
    if hasattr(neck, 'out_strides'):
        return list(neck.out_strides)
    if all(hasattr(neck, a) for a in ('start_level', 'backbone_end_level', 'num_outs')):
        strides = in_strides[neck.start_level:neck.backbone_end_level]  # mmdet / mmseg FPN
        while len(strides) < neck.num_outs:
            strides.append(strides[-1] * 2)
        return strides[:neck.num_outs]
    return None


def expected_strides(model):
    """(consumer, strides, exact) for every head that reads the pyramid by stride."""
    found = []
    for name in ('rpn_head', 'bbox_head'):
        head = getattr(model, name, None)
        generator = getattr(head, 'prior_generator', None)
        if generator is not None and hasattr(generator, 'strides'):
            found.append((f'{name} anchors', [int(s[0]) for s in generator.strides], True))
    roi_head = getattr(model, 'roi_head', None)
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        extractor = getattr(roi_head, name, None)
        if extractor is not None and hasattr(extractor, 'featmap_strides'):
            found.append((f'roi_head.{name}', [int(s) for s in extractor.featmap_strides], False))
    decode = getattr(model, 'decode_head', None)
    if decode is not None and hasattr(decode, 'feature_strides'):
        index = decode.in_index if isinstance(decode.in_index, (list, tuple)) else [decode.in_index]
        found.append(('decode_head', list(decode.feature_strides), index))
    return found


def check_pyramid_strides(model) -> None:
    """Raise :class:`PyramidStrideError` when the neck feeds a head the wrong strides."""
    backbone, neck = getattr(model, 'backbone', None), getattr(model, 'neck', None)
    strides_in = backbone_strides(backbone) if backbone is not None else None
    if strides_in is None or neck is None:
        return
    strides = neck_strides(neck, list(strides_in))
    if strides is None:
        return
    for consumer, wanted, rule in expected_strides(model):
        if rule is True:
            given, ok = strides, strides == wanted
        elif rule is False:  # RoI extractors read the first len(wanted) levels
            given, ok = strides[:len(wanted)], strides[:len(wanted)] == wanted
        else:  # decode head: the levels selected by in_index
            given = [strides[i] if i < len(strides) else None for i in rule]
            ok = given == wanted
        if not ok:
            raise PyramidStrideError(
                f'{type(model).__name__}: the neck ({type(neck).__name__}) outputs strides '
                f'{strides} but {consumer} expects {wanted} (gets {given}) from backbone '
                f'{type(backbone).__name__} with strides {strides_in}. {NECK_ADVICE}')


def _checked(build_func):
    if getattr(build_func, 'checks_pyramid', False):
        return build_func

    @functools.wraps(build_func)
    def build_and_check(*args, **kwargs):
        model = build_func(*args, **kwargs)
        check_pyramid_strides(model)
        return model

    build_and_check.checks_pyramid = True
    return build_and_check


def build_model_from_config(cfg):
    """``cfg.model`` (a config or its path) built in its scope's registry, without
    fetching the backbone's pretrained weights (the caller brings the weights)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    scope = cfg.get('default_scope', 'mmdet')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(model_cfg.backbone)
    model_cfg.backbone.pop('init_cfg', None)
    if 'pretrained' in model_cfg.backbone:  # TimmBackbone
        model_cfg.backbone['pretrained'] = False
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(model_cfg)


# ----------------------------------------------------------------------------- registration

def register_all() -> list:
    """Register into every importable OpenMMLab registry; returns their scopes."""
    scopes = []
    for module_name in OPENMMLAB_REGISTRIES:
        try:
            registry = importlib.import_module(module_name).MODELS
        except ImportError:
            continue
        for name, cls in registered_modules().items():
            if registry.get(name) is not cls:
                registry.register_module(name=name, module=cls, force=True)
        registry.build_func = _checked(registry.build_func)
        registry.parent.build_func = _checked(registry.parent.build_func)  # mmengine's root
        scopes.append(registry.scope)
    return scopes


def register_runtime(scopes: List[str]) -> bool:
    """Hooks, the atomic checkpoint backend (mmengine + mmcv) and the image loader
    (in the ``scopes`` :func:`register_all` found)."""
    try:
        from . import runtime
    except ImportError:
        return False
    runtime.register(scopes)
    return True


def install_safe_checkpoint_loader() -> bool:
    """Make mmengine load checkpoints through the safe allow-list loader.

    The allow-list is registered with torch (so a plain ``torch.load`` works
    too), and mmengine's loading of local files and ``release:`` names
    (``load_from``, ``--resume``, the inferencers) goes through
    :func:`efficientvit_det.checkpoints.load_checkpoint_file`, which names any
    refused object; the papers' official COCO detectors are converted to our
    layout on the way.
    """
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:
        return False
    from .checkpoints import (convert_detector_checkpoint, fetch_checkpoint,
                              load_checkpoint_file, register_allow_list)
    register_allow_list()

    def load_allowlisted(filename, map_location):
        path = fetch_checkpoint(os.path.expanduser(filename))
        return convert_detector_checkpoint(load_checkpoint_file(path, map_location), path)

    CheckpointLoader.register_scheme(prefixes=['', 'release:'], loader=load_allowlisted,
                                     force=True)
    return True
