"""Config options checked against the classes that will receive them, before a run.

Many OpenMMLab classes take ``**kwargs`` and pass them on, so a misspelt option is
accepted at build time and fails much later: ``default_hooks.checkpoint.intervall``
reaches ``Runner.save_checkpoint`` only at the first save, after a whole epoch. Here
the options of hooks, the optimizer (wrapper, ``paramwise_cfg``), parameter
schedulers, data loaders, samplers, datasets (through wrappers), top-level pipeline
transforms and evaluator metrics are compared with the parameters their class (and
the OpenMMLab parents its ``**kwargs`` go to) accepts. Classes whose ``**kwargs`` go
elsewhere, transforms nested inside others, loops and the model are not checked
(the model fails at build time anyway).
"""
import difflib
import inspect
from typing import Iterator, Optional, Set, Tuple

from ..errors import ConfigOptionError
from .scope import config_scope, registries

#: parameters ``Runner.build_dataloader`` takes out of a data loader config itself
DATALOADER_KEYS = {'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
                   'num_batch_per_epoch', 'disable_subprocess_warning'}
#: what mmengine's ``DefaultOptimWrapperConstructor`` reads from ``paramwise_cfg``
PARAMWISE_KEYS = {'custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
                  'dwconv_decay_mult', 'flat_decay_mult', 'dcn_offset_lr_mult',
                  'bypass_duplicate'}


#: packages whose classes pass ``**kwargs`` on to their parent class
FOLLOWED_PACKAGES = {'mmengine', 'mmcv', 'mmdet', 'mmseg', 'efficientvit_det'}
#: keys the runner takes out of a config before it builds the class
RUNNER_KEYS = {'HOOKS': {'priority'}, 'PARAM_SCHEDULERS': {'convert_to_iter_based'}}


def accepted_parameters(cls) -> Optional[Set[str]]:
    """Keyword parameters ``cls(...)`` accepts, following ``**kwargs`` up the class
    hierarchy while it stays in OpenMMLab code (which hands them to
    ``super().__init__``); None when they go somewhere this cannot follow."""
    from mmengine.hooks import CheckpointHook
    accepted: Set[str] = set()
    for klass in cls.__mro__[:-1]:  # object's takes nothing
        if '__init__' not in vars(klass):
            continue
        names, forwards = keyword_parameters(klass.__init__)
        accepted |= names
        if not forwards:
            return accepted
        if klass is CheckpointHook:
            # its **kwargs go to every Runner.save_checkpoint call, which already gets
            # each of its parameters from the hook: any other key fails at the first save
            return accepted
        if klass.__module__.split('.')[0] not in FOLLOWED_PACKAGES:
            return None
    return None if any('__init__' in vars(k) for k in cls.__mro__[:-1]) else accepted


def keyword_parameters(func) -> Tuple[Set[str], bool]:
    """(names ``func`` takes by keyword, whether it takes ``**kwargs``)."""
    params = inspect.signature(func).parameters.values()
    names = {p.name for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != 'self'}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def check_config_options(cfg, splits: Tuple[str, ...] = ('train', 'val', 'test')) -> None:
    """Raise :class:`ConfigOptionError` for the first option no receiver accepts."""
    from mmengine.registry import DefaultScope
    scope = config_scope(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        for where, registry_name, options, extra in _components(cfg, splits):
            _check(where, getattr(registries(scope), registry_name), options,
                   extra | RUNNER_KEYS.get(registry_name, set()))


def _components(cfg, splits) -> Iterator[tuple]:
    """(where, registry, options, keys accepted besides the class's parameters)."""
    from torch.utils.data import DataLoader
    for name, hook in (cfg.get('default_hooks') or {}).items():
        yield f'default_hooks.{name}', 'HOOKS', hook, set()
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        yield f'custom_hooks[{i}]', 'HOOKS', hook, set()
    wrapper = cfg.get('optim_wrapper')
    if 'train' in splits and isinstance(wrapper, dict):
        yield 'optim_wrapper', 'OPTIM_WRAPPERS', dict(wrapper, type=wrapper.get(
            'type', 'OptimWrapper')), {'paramwise_cfg', 'constructor'}
        if isinstance(wrapper.get('optimizer'), dict):
            yield 'optim_wrapper.optimizer', 'OPTIMIZERS', wrapper['optimizer'], set()
        if wrapper.get('paramwise_cfg') and not wrapper.get('constructor'):
            _check_keys('optim_wrapper.paramwise_cfg', 'the optimizer wrapper constructor',
                        wrapper['paramwise_cfg'], PARAMWISE_KEYS)
        schedulers = cfg.get('param_scheduler') or []
        for i, scheduler in enumerate(schedulers if isinstance(schedulers, list)
                                      else [schedulers]):
            yield f'param_scheduler[{i}]', 'PARAM_SCHEDULERS', scheduler, set()
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        where = f'{split}_dataloader'
        _check_keys(where, 'torch DataLoader', loader,
                    DATALOADER_KEYS | keyword_parameters(DataLoader.__init__)[0])
        for key in ('sampler', 'batch_sampler'):
            if isinstance(loader.get(key), dict):
                yield f'{where}.{key}', 'DATA_SAMPLERS', loader[key], set()
        yield from _dataset_components(f'{where}.dataset', loader.get('dataset'))
        evaluator = cfg.get(f'{split}_evaluator')
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        for i, metric in enumerate(metrics):
            if isinstance(metric, dict) and 'type' in metric:
                yield f'{split}_evaluator' + (f'[{i}]' if len(metrics) > 1 else ''), \
                    'METRICS', metric, set()


def _dataset_components(where: str, dataset) -> Iterator[tuple]:
    if not isinstance(dataset, dict):
        return
    yield where, 'DATASETS', dataset, set()
    if isinstance(dataset.get('dataset'), dict):
        yield from _dataset_components(f'{where}.dataset', dataset['dataset'])
    for i, sub in enumerate(dataset.get('datasets') or []):
        yield from _dataset_components(f'{where}.datasets[{i}]', sub)
    for i, transform in enumerate(dataset.get('pipeline') or []):
        if isinstance(transform, dict):
            yield f'{where}.pipeline[{i}]', 'TRANSFORMS', transform, set()


def _check(where: str, registry, options, extra: Set[str]) -> None:
    if not isinstance(options, dict) or 'type' not in options:
        return
    cls = options['type']
    if isinstance(cls, str):
        with registry.switch_scope_and_registry(options.get('_scope_')) as scoped:
            cls = scoped.get(cls)
    if not inspect.isclass(cls):
        return  # unknown types fail at build time with mmengine's own message
    accepted = accepted_parameters(cls)
    if accepted is not None:
        _check_keys(where, cls.__name__, options, accepted | extra)


def _check_keys(where: str, receiver: str, options: dict, accepted: Set[str]) -> None:
    unknown = [k for k in options if k not in accepted and k != 'type'
               and not k.startswith('_')]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, sorted(accepted), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    known = f"it accepts: {', '.join(sorted(accepted))}" if accepted else 'it takes no options'
    raise ConfigOptionError(f"{where}: unknown option '{key}' for {receiver}{hint}; {known}")
