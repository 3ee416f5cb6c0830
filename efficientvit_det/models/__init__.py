"""Pure-torch models (mmengine's BaseModule optional): importing this package
never needs mmdet, mmseg or mmcv."""
from ..errors import BackboneArgumentError
from .base import EfficientBackbone
from .efficientvit import EfficientViT
from .shvit import SHViT
from .uniform import UniForm

BACKBONES = {'SHViT': SHViT, 'EfficientViT': EfficientViT, 'UniForm': UniForm}
#: short names used by configs, tools and benchmarks, e.g. ``shvit_s4``
BACKBONE_NAMES = {f'{prefix}_{arch}': (cls, arch)
                  for prefix, cls in (('shvit', SHViT), ('efficientvit', EfficientViT),
                                      ('uniform', UniForm))
                  for arch in cls.arch_settings}


def build_backbone(name: str, **kwargs) -> EfficientBackbone:
    """``build_backbone('shvit_s4', out_indices=(1, 2))``."""
    if name not in BACKBONE_NAMES:
        raise BackboneArgumentError(f'Unknown backbone {name!r}; known: '
                                    f'{sorted(BACKBONE_NAMES)}')
    cls, arch = BACKBONE_NAMES[name]
    return cls(arch, **kwargs)


__all__ = ['EfficientBackbone', 'SHViT', 'EfficientViT', 'UniForm', 'BACKBONES',
           'BACKBONE_NAMES', 'build_backbone']
