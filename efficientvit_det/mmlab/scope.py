"""The one place that says which OpenMMLab scope a config belongs to, where its
registries are, and how a model is built from it or unwrapped from a wrapper."""
import ast
import contextlib
import copy
import importlib
import os.path as osp

from ..errors import ConfigFileError, ConfigOptionError
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


def config_path(name: str) -> str:
    """A config's file: a path, or an installed package's own config named as in
    ``_base_`` (``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``)."""
    if '::' not in name:
        return name
    package, relative = name.split('::', 1)
    try:
        from mmengine.utils import get_installed_path
        return osp.join(get_installed_path(package), '.mim', 'configs', relative)
    except Exception:  # not installed: mmengine raises a bare Exception or ImportError
        raise ConfigFileError(f'config not found: {name} ({package} is not installed)'
                              ) from None


def read_config(path: str):
    """mmengine's ``Config.fromfile(path)``, its usual mistakes named in one line: a
    missing file, Python that does not parse, and a ``custom_imports`` module that is
    not installed (mmengine imports them when it loads the file). ``path`` may also
    name a package's config (:func:`config_path`)."""
    from mmengine.config import Config
    given, path = path, config_path(path)
    if not osp.isfile(path):
        raise ConfigFileError(f'config not found: {given}' +
                              (f' (no file {path})' if path != given else ''))
    try:  # mmengine reports a syntax error without its line
        with open(path, encoding='utf-8') as f:
            ast.parse(f.read(), path)
        return Config.fromfile(path)
    except SyntaxError as err:
        where = f'{path}, line {err.lineno}' if err.lineno else path
        raise ConfigFileError(f'{where}: {err.msg} (a config is Python: fix the syntax)'
                              ) from None
    except ImportError as err:
        cause = err  # mmengine re-raises the import's error with sys.path in its text
        while getattr(cause, 'name', None) is None and (cause.__cause__ or cause.__context__):
            cause = cause.__cause__ or cause.__context__
        missing = getattr(cause, 'name', None) or str(err).splitlines()[0]
        raise ConfigFileError(f'{path}: cannot import {missing}: install it, or fix the name '
                              'in custom_imports') from None


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
    if isinstance(cfg, str):
        cfg = read_config(cfg)
    model_cfg = copy.deepcopy(cfg.model)  # some models (DINO) write into their config
    model_cfg.backbone = without_pretrained_weights(model_cfg.backbone)
    model = build_from_config(cfg, 'MODELS', model_cfg)
    check_pyramid_strides(model)
    return model


def without_pretrained_weights(backbone_cfg) -> dict:
    """A backbone config that builds without loading or fetching any weights: our
    backbones' ``init_cfg`` and a timm backbone's ``pretrained`` dropped."""
    backbone_cfg = dict(backbone_cfg)
    backbone_cfg.pop('init_cfg', None)
    if 'pretrained' in backbone_cfg:  # TimmBackbone takes False; mmdet's / mmseg's None
        backbone_cfg['pretrained'] = False if backbone_cfg.get('type') == 'TimmBackbone' \
            else None
    return backbone_cfg
