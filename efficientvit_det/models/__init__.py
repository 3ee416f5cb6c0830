"""Pure-torch models (mmengine's BaseModule optional): importing this package
never needs mmdet, mmseg or mmcv."""
from .efficientvit import EfficientViT
from .shvit import SHViT
from .uniform import UniForm

BACKBONES = {'SHViT': SHViT, 'EfficientViT': EfficientViT, 'UniForm': UniForm}

__all__ = ['SHViT', 'EfficientViT', 'UniForm', 'BACKBONES']
