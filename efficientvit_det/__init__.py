"""efficientvit_det: SHViT, EfficientViT-M and UniForm backbones for mmdet / mmseg.

Importing the package registers its models with every installed OpenMMLab
registry (configs use ``custom_imports=dict(imports=['efficientvit_det'])``).
"""
from .models import BACKBONE_NAMES, EfficientViT, SHViT, UniForm, build_backbone
from .registry import install_safe_checkpoint_loader, register_all, register_runtime

__version__ = '0.1.0'

REGISTERED_SCOPES = register_all()
install_safe_checkpoint_loader()
register_runtime(REGISTERED_SCOPES)

__all__ = ['SHViT', 'EfficientViT', 'UniForm', 'build_backbone', 'BACKBONE_NAMES',
           'REGISTERED_SCOPES']
