"""The one place that says which OpenMMLab scope a config belongs to, where its
registries are, and how a model is built from it or unwrapped from a wrapper."""
import contextlib
import importlib

from ..errors import ConfigOptionError
from .pyramid import check_pyramid_strides

#: the scope of a config that names none (our tools are for mmdet and mmseg)
DEFAULT_SCOPE = 'mmdet'


def config_scope(cfg) -> str:
    """``mmdet`` or ``mmseg``: the config's ``default_scope``."""
    return cfg.get('default_scope') or DEFAULT_SCOPE


def registries(cfg_or_scope):
    """The ``<scope>.registry`` module of a config (or of a scope name)."""
    scope = cfg_or_scope if isinstance(cfg_or_scope, str) else config_scope(cfg_or_scope)
    return importlib.import_module(f'{scope}.registry')


def unwrap_model(model):
    """The model inside a DDP / data-parallel wrapper (or the model itself)."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


@contextlib.contextmanager
def config_typos_named():
    """A class built from the config with a key it does not take (``archh='s4'``)
    or without one it needs: one line naming the class and the key, not the
    registry's traceback. Other errors pass unchanged."""
    try:
        yield
    except TypeError as err:
        text = str(err).splitlines()[0]
        if 'unexpected keyword argument' not in text and 'required positional' not in text:
            raise
        raise ConfigOptionError(f'{text} (a typo in the config? see the class\'s arguments)'
                                ) from None


def build_from_config(cfg, registry_name: str, options: dict):
    """``options`` built by the config's scope registry ``registry_name`` (MODELS,
    DATASETS, ...), with that scope as the default one."""
    from mmengine.registry import DefaultScope
    scope = config_scope(cfg)
    with DefaultScope.overwrite_default_scope(scope), config_typos_named():
        return getattr(registries(scope), registry_name).build(options)


def build_model_from_config(cfg):
    """``cfg.model`` (a config or its path) built in its scope's registry, without
    fetching the backbone's pretrained weights (the caller brings the weights), its
    pyramid strides checked."""
    from mmengine.config import Config
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    model_cfg = cfg.model.copy()
    model_cfg.backbone = without_pretrained_weights(model_cfg.backbone)
    model = build_from_config(cfg, 'MODELS', model_cfg)
    check_pyramid_strides(model)
    return model


def without_pretrained_weights(backbone_cfg) -> dict:
    """A backbone config that builds without loading or fetching any weights: our
    backbones' ``init_cfg`` and a timm backbone's ``pretrained`` dropped."""
    backbone_cfg = dict(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)
    if 'pretrained' in backbone_cfg:  # TimmBackbone
        backbone_cfg['pretrained'] = False
    return backbone_cfg
