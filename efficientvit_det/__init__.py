"""efficientvit_det: SHViT, EfficientViT-M and UniForm backbones for mmdet / mmseg.

Importing the package adds our classes to the installed OpenMMLab registries
(configs use ``custom_imports=dict(imports=['efficientvit_det'])``) and changes
nothing that mmdet, mmseg, mmengine or mmcv installed. Without the OpenMMLab
stack (torch alone) the backbones and the latency tool still work.
"""
import importlib.util

from .models import BACKBONE_NAMES, EfficientViT, SHViT, UniForm, build_backbone
from .models.neck import PyramidAdapter, TransposedFPN

__version__ = '0.1.0'


def _register() -> list:
    if not all(importlib.util.find_spec(m) for m in ('mmengine', 'mmcv')):
        return []
    from .mmlab.registration import register_all
    return register_all()


def swap_backbone(config: str, backbone: str, weights=None):
    """``config`` (a path or ``mmdet::``/``mmseg::`` name) with ``backbone`` in place
    of its backbone, as a new mmengine ``Config``: see
    :func:`efficientvit_det.mmlab.swap.swap_backbone` (needs the OpenMMLab stack)."""
    from .mmlab.swap import swap_backbone as swap
    return swap(config, backbone, weights)


#: the task scopes (``mmdet``, ``mmseg``) whose registries hold our classes
REGISTERED_SCOPES = _register()

__all__ = ['SHViT', 'EfficientViT', 'UniForm', 'TransposedFPN', 'PyramidAdapter',
           'build_backbone', 'swap_backbone',
           'BACKBONE_NAMES', 'REGISTERED_SCOPES']
