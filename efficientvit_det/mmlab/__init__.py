"""The OpenMMLab integration: our classes registered (added, never replacing),
hooks, transforms, metrics, the checks run before a run, inferencers, model index
and toy datasets. Everything here needs mmengine and mmcv; mmdet / mmseg where a
config's scope asks for them."""
from .hooks import PyramidStrideCheckHook
from .pyramid import check_pyramid_strides
from .scope import build_model_from_config

__all__ = ['check_pyramid_strides', 'PyramidStrideCheckHook', 'build_model_from_config']
