"""Checkpoint layouts, conversion and safe loading (torch only; mmengine optional).

Layouts a user brings, all converted to ours (``patch_embed.convN``,
``stages.N.downsample.{res1,patchmerge,res2}``, ``stages.N.blocks.M``):

* ``official``: the SHViT / EfficientViT ImageNet releases (``blocks1/2/3``,
  downsampling as the first three entries of ``blocksN``, Conv+BN as ``c``/``bn``);
* ``timm``: ``timm.create_model('shvit_s4' | 'efficientvit_m4')`` and the hub;
* ``efficientvit_det``: ours, which is also the UniForm reference layout;
* any of them wrapped by mmdet/mmseg (``state_dict`` + ``backbone.`` prefix),
  by the releases (``model``) or by ``module.`` (DataParallel).

Whole detectors come in two layouts: ours (what mmengine saves for our
configs) and the papers' COCO releases (mmdet 2.x, ``official`` layout: the
backbone in the release layout under ``backbone.``, the neck as
``EfficientViTFPN``, the heads under mmdet's names, which 3.x kept).

Loading is strict: a classification head is dropped, attention-bias tables are
resized to the model's window, and anything else missing or unexpected raises
:class:`CheckpointMismatchError` naming the keys, so a wrong variant never
loads "successfully".
"""
import os
import pickle
import re
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F

from .fileio import atomic_path

CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'efficientvit_det', 'checkpoints')

_SHVIT_RELEASES = 'https://github.com/ysj9909/SHViT/releases/download/v1.0/'
_EFFICIENTVIT_RELEASES = ('https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/'
                          'releases/download/v1.0/')
#: The papers' releases (official layout): ImageNet-1k backbones under their
#: variant names, the COCO detectors (1x schedule) under their file names.
RELEASE_URLS = {
    **{f'shvit_{v}': f'{_SHVIT_RELEASES}shvit_{v}.pth' for v in ('s1', 's2', 's3', 's4')},
    **{f'efficientvit_{v}': f'{_EFFICIENTVIT_RELEASES}efficientvit_{v}.pth'
       for v in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
    **{name: f'{_SHVIT_RELEASES}{name}.pth'
       for name in ('maskrcnn_shvit_s4_1x_coco', 'retinanet_shvit_s4_1x_coco')},
    **{name: f'{_EFFICIENTVIT_RELEASES}{name}.pth'
       for name in ('mask_rcnn_efficientvit_m4_fpn_1x_coco',
                    'retinanet_efficientvit_m4_fpn_1x_coco')},
}
#: The same weights on the Hugging Face hub, in timm's layout.
HUB_IDS = {
    **{f'shvit_{v}': f'timm/shvit_{v}.in1k' for v in ('s1', 's2', 's3', 's4')},
    **{f'efficientvit_{v}': f'timm/efficientvit_{v}.r224_in1k'
       for v in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
}


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not fit the model (wrong variant, wrong family)."""


class CheckpointDownloadError(RuntimeError):
    """A released checkpoint could not be downloaded (no network, moved file)."""


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint pickles an object outside the allow-list; it was not run."""


# ----------------------------------------------------------------------------- safe loading

def _history_buffer_method(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general ``getattr`` would let a crafted
    pickle walk to arbitrary callables, so only those methods resolve.
    """
    from mmengine.logging import HistoryBuffer
    methods = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in methods:
        return getattr(HistoryBuffer, name)
    owner_name = getattr(owner, '__qualname__', type(owner).__qualname__)
    raise pickle.UnpicklingError(
        f'GLOBAL builtins.getattr({owner_name}, {name!r}) was refused: only the '
        'statistics methods of mmengine HistoryBuffer may be referenced')


def allowed_checkpoint_globals() -> List[object]:
    """Exactly the globals an mmengine runner checkpoint pickles besides tensors.

    ``message_hub`` holds ``HistoryBuffer`` objects of numpy arrays and scalars
    (and references to the buffer's statistics methods); the model, optimizer,
    schedulers and meta are tensors, numbers, strings and containers, which
    torch's safe unpickler accepts already.
    """
    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # numpy 1 and 2 pickles
        allowed += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    allowed += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    try:
        from mmengine.logging import HistoryBuffer
        allowed += [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')]
    except ImportError:
        pass
    return allowed


def register_allow_list() -> None:
    """Allow the runner-checkpoint globals for every ``weights_only`` load in
    this process (idempotent), so a plain ``torch.load`` works as well."""
    torch.serialization.add_safe_globals(allowed_checkpoint_globals())


class InertObject:
    """Stands in for a pickled object whose class is outside the allow-list.

    Published files often pickle more than tensors (an ``argparse.Namespace``
    under ``args``, training-framework objects in ``meta``). Such an object is
    rebuilt from its state (``__new__`` + ``__setstate__``: data only, no code
    of its class runs) so the tensors around it can be read. A pickle that asks
    to *call* the class or function (a ``REDUCE``: how code-running payloads
    work) reaches ``__init__``, which refuses.
    """

    # torch's unpickler tests placeholders with ``in allowed.values()``: they must
    # never define __eq__, __hash__, __call__ or __getattr__.
    pickled_name = '?'
    refused_calls: List[str] = []

    def __init__(self, *args, **kwargs):
        self.refused_calls.append(self.pickled_name)
        raise pickle.UnpicklingError(f'refused to call {self.pickled_name}(...)')

    def __setstate__(self, state):
        self.pickled_state = state

    def __repr__(self):
        return f'<inert {self.pickled_name}>'


def _printable(name: str) -> str:
    """A pickled name as it may be printed (no control or escape characters)."""
    return ascii(name)[1:-1]


def _inert_classes(names: List[str], refused_calls: List[str]) -> List[tuple]:
    """One :class:`InertObject` subclass per pickled global name, for torch's allow-list."""
    return [(type(name.rsplit('.', 1)[-1], (InertObject,),
                  dict(pickled_name=_printable(name), refused_calls=refused_calls)), name)
            for name in names]


def _refused_culprit(err: Exception) -> str:
    match = re.search(r'GLOBAL ([\w.]+(\([^)]*\))?)', str(err))
    return match.group(1) if match else str(err).strip().splitlines()[0]


def load_checkpoint_file(path: str, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` plus the runner allow-list.

    Objects of other classes are kept as inert placeholders (logged once);
    a pickle that would call anything outside the allow-list raises
    :class:`UnsafeCheckpointError` naming it. Nothing from the file is executed.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint not found: {path}')
    if path.endswith('.safetensors'):  # the hub's format: tensors only, nothing to unpickle
        from safetensors.torch import load_file
        return load_file(path, device=str(map_location))
    register_allow_list()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_error = err
    try:
        unknown = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError):
        unknown = []  # not a zip checkpoint, or opcodes torch never reads: refuse below
    refused_calls: List[str] = []
    if unknown:
        try:
            with torch.serialization.safe_globals(_inert_classes(unknown, refused_calls)):
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            first_error = err
        else:
            from .models.base import log_message
            ignored = ', '.join(map(_printable, unknown))
            log_message(f'{path}: ignored pickled objects of {ignored} (not weights; read as '
                        'inert placeholders, none of their code run)')
            return checkpoint
    if refused_calls:
        problem = f'it asks the unpickler to call {refused_calls[0]}(...), which would run code'
    else:
        problem = (f'it pickles {_printable(_refused_culprit(first_error))!r}, which is not a '
                   'tensor or one of the allowed checkpoint classes')
    raise UnsafeCheckpointError(
        f'Refusing to load {path}: {problem}. Nothing was executed. Only load it with '
        'weights_only=False if you trust where it came from.') from None


def fetch_checkpoint(spec: str) -> str:
    """Resolve a checkpoint spec to a local file.

    ``spec`` is a path, an ``http(s)://`` URL (downloaded once into
    ``CACHE_DIR``), a Hugging Face hub id ``hf-hub:ORG/NAME``, a released
    backbone or detector with ``release:`` (``release:shvit_s4``,
    ``release:maskrcnn_shvit_s4_1x_coco``) or a backbone on the hub with ``hub:``.
    """
    if spec.startswith('release:'):
        name = spec[len('release:'):]
        if name not in RELEASE_URLS:
            raise KeyError(f'No released checkpoint for {name!r}; known: {sorted(RELEASE_URLS)}')
        spec = RELEASE_URLS[name]
    if spec.startswith('hub:'):
        name = spec[len('hub:'):]
        if name not in HUB_IDS:
            raise KeyError(f'No hub checkpoint for {name!r}; known: {sorted(HUB_IDS)}')
        spec = 'hf-hub:' + HUB_IDS[name]
    if spec.startswith('hf-hub:'):
        from huggingface_hub import hf_hub_download
        repo = spec[len('hf-hub:'):]
        try:
            return hf_hub_download(repo, 'model.safetensors')
        except OSError as err:  # offline, not cached, HTTP errors
            raise CheckpointDownloadError(
                f'Could not get model.safetensors of {repo} from the Hugging Face hub '
                f'({type(err).__name__}). Download https://huggingface.co/{repo}/resolve/main/'
                'model.safetensors by hand and give its local path instead.') from None
    if spec.startswith(('http://', 'https://')):
        target = os.path.join(CACHE_DIR, os.path.basename(spec.split('?')[0]))
        if not os.path.exists(target):
            try:
                with atomic_path(target) as partial:
                    torch.hub.download_url_to_file(spec, partial, progress=True)
            except OSError as err:  # URLError, HTTPError, timeouts
                raise CheckpointDownloadError(
                    f'Could not download {spec} ({err}). Download it by hand and put it at '
                    f'{target}, or give the local path instead.') from None
        return target
    return spec


# ----------------------------------------------------------------------------- layouts

_PATCH_EMBED = re.compile(r'^patch_embed\.(\d)\.')
_OFFICIAL_BLOCKS = re.compile(r'^blocks(\d)\.(\d+)\.')
_TIMM_DOWNSAMPLE = re.compile(r'^stages\.(\d)\.downsample\.(\d)\.')
_DOWNSAMPLE_PARTS = ['res1.0', 'res1.1', 'patchmerge', 'res2.0', 'res2.1']


def model_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """All tensors of a release / timm / mmengine checkpoint (``module.`` stripped)."""
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model', 'state_dict_ema'):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointMismatchError('Checkpoint holds no state dict of tensors (looked under '
                                      '"state_dict", "model" and the top level)')
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in checkpoint.items()}


def unwrap_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The backbone tensors of a release / timm / mmengine checkpoint."""
    state = model_state_dict(checkpoint)
    if any(k.startswith('backbone.') for k in state):  # a whole detector / segmentor
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    return state


def detect_layout(state: Dict[str, torch.Tensor]) -> str:
    keys = list(state)
    if any(k.startswith('blocks1.') for k in keys):
        return 'official'
    if any(_PATCH_EMBED.match(k) or _TIMM_DOWNSAMPLE.match(k) or '.se.fc1.' in k for k in keys):
        return 'timm'
    return 'efficientvit_det'


def convert_key(key: str) -> str:
    """Map one official / timm key to our layout (ours map to themselves)."""
    key = _PATCH_EMBED.sub(lambda m: f'patch_embed.conv{int(m.group(1)) // 2 + 1}.', key)
    match = _OFFICIAL_BLOCKS.match(key)
    if match:
        stage, index = int(match.group(1)) - 1, int(match.group(2))
        if stage == 0:
            part = f'blocks.{index}'
        elif index < 3:
            part = ('downsample.res1', 'downsample.patchmerge', 'downsample.res2')[index]
        else:
            part = f'blocks.{index - 3}'
        key = f'stages.{stage}.{part}.' + key[match.end():]
    key = _TIMM_DOWNSAMPLE.sub(
        lambda m: f'stages.{m.group(1)}.downsample.{_DOWNSAMPLE_PARTS[int(m.group(2))]}.', key)
    key = re.sub(r'\.se\.fc(\d)\.', r'.se.conv\1.conv.', key)
    return re.sub(r'(^|\.)c\.', r'\1conv.', key)


def convert_state_dict(state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], str]:
    """Convert to our layout; drops the classification head and bias index buffers."""
    layout = detect_layout(state)
    converted = {convert_key(k): v for k, v in state.items()
                 if not k.startswith('head.') and not k.endswith('attention_bias_idxs')}
    return converted, layout


def resize_attention_biases(table: torch.Tensor, window: int) -> torch.Tensor:
    """Bicubic resize of a (heads, w*w) offset-bias table to (heads, window*window)."""
    heads, size = table.shape
    side = int(round(size ** 0.5))
    grid = table.float().view(1, heads, side, side)
    grid = F.interpolate(grid, size=(window, window), mode='bicubic', align_corners=False)
    return grid.view(heads, window * window).to(table.dtype)


# The papers' detector neck (mmdet 2.x "EfficientViTFPN", every conv a ConvModule
# under ``.conv.``): ``lateral_convs.i`` -> ours; ``extra_trans_convs.i`` (the
# transposed convs, finer and finer) -> ``trans_convs.i``; ``extra_fpn_convs.i``
# (outputs of the transposed levels, FINEST first) -> ``fpn_convs.i``;
# ``fpn_convs.i`` (outputs of the backbone levels) -> ``fpn_convs.{i + transposed}``,
# and past the backbone levels (RetinaNet's stride-2 conv on the last input)
# -> ``extra_convs.{i - levels}``.
_OFFICIAL_NECK = re.compile(r'^neck\.(lateral_convs|fpn_convs|extra_trans_convs|extra_fpn_convs)'
                            r'\.(\d+)\.conv\.')


def detect_detector_layout(state: Dict[str, torch.Tensor]) -> str:
    """'official' for the papers' COCO releases, else 'efficientvit_det' (ours, or
    any other mmdet/mmseg model, which needs no conversion)."""
    if any(k.startswith(('backbone.blocks1.', 'neck.extra_trans_convs.')) for k in state):
        return 'official'
    return 'efficientvit_det'


def convert_detector_state_dict(state: Dict[str, torch.Tensor]
                                ) -> Tuple[Dict[str, torch.Tensor], str]:
    """A whole detector / segmentor state dict in our layout, and the layout found."""
    layout = detect_detector_layout(state)
    if layout != 'official':
        return dict(state), layout
    backbone, _ = convert_state_dict(
        {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')})
    converted = {f'backbone.{k}': v for k, v in backbone.items()}
    levels = {int(m.group(2)) for m in map(_OFFICIAL_NECK.match, state)
              if m and m.group(1) == 'lateral_convs'}
    transposed = {int(m.group(2)) for m in map(_OFFICIAL_NECK.match, state)
                  if m and m.group(1) == 'extra_trans_convs'}
    for key, value in state.items():
        if key.startswith('backbone.'):
            continue
        match = _OFFICIAL_NECK.match(key)
        if match:
            kind, index = match.group(1), int(match.group(2))
            if kind == 'lateral_convs':
                name = f'lateral_convs.{index}'
            elif kind == 'extra_trans_convs':
                name = f'trans_convs.{index}'
            elif kind == 'extra_fpn_convs':
                name = f'fpn_convs.{index}'
            elif index < len(levels):
                name = f'fpn_convs.{index + len(transposed)}'
            else:
                name = f'extra_convs.{index - len(levels)}'
            key = f'neck.{name}.' + key[match.end():]
        converted[key] = value
    return converted, layout


def convert_detector_checkpoint(checkpoint, source: str = 'checkpoint'):
    """The checkpoint with an official detector's ``state_dict`` converted to our
    layout (logged); anything else is returned as it is (what mmengine's loading gets)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('state_dict'), dict):
        state, layout = convert_detector_state_dict(model_state_dict(checkpoint))
        if layout == 'official':
            from .models.base import log_message
            log_message(f'{source}: the papers\' official detector layout, converted to ours')
            return dict(checkpoint, state_dict=state)
    return checkpoint


def _model_name(model: torch.nn.Module) -> str:
    def named(module):
        return f'{type(module).__name__}({getattr(module, "arch_name", "")!r})'
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, torch.nn.Module):
        return f'{type(model).__name__} with backbone {named(backbone)}'
    return named(model)


def _describe(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return f'{len(keys)} [{shown}{", ..." if len(keys) > limit else ""}]'


def adapt_to_model(model: torch.nn.Module, state: Dict[str, torch.Tensor], layout: str,
                   source: str = 'checkpoint', resize_biases: bool = True
                   ) -> Dict[str, torch.Tensor]:
    """Resize bias tables for the model's windows (when allowed) and check the fit
    strictly. A trained detector is not resized: its numbers hold only with the
    windows it was trained with."""
    target = model.state_dict()
    state = dict(state)
    for key, value in state.items():
        if (resize_biases and key.endswith('attention_biases') and key in target
                and value.shape != target[key].shape and value.shape[0] == target[key].shape[0]):
            side = int(round(target[key].shape[1] ** 0.5))
            state[key] = resize_attention_biases(value, side)
    missing = sorted(k for k in target if k not in state)
    unexpected = sorted(k for k in state if k not in target)
    mismatched = sorted(f'{k} {tuple(state[k].shape)} vs model {tuple(target[k].shape)}'
                        for k in target if k in state and state[k].shape != target[k].shape)
    if missing or unexpected or mismatched:
        parts = [f'{source} ({layout} layout) does not fit {_model_name(model)}:']
        if missing:
            parts.append(f'missing keys: {_describe(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {_describe(unexpected)}')
        if mismatched:
            parts.append(f'shape mismatches: {_describe(mismatched, 4)}')
        if any(k.endswith('attention_biases') and state[k].shape != target[k].shape
               for k in target if k in state):
            parts.append('Its attention-bias tables are for other window sizes: build the '
                         'backbone with the windows it was trained with (the papers\' '
                         'EfficientViT detectors: window_size=(7, 7, 4)).')
        if (hasattr(model, 'backbone') and not any(k.startswith('backbone.') for k in state)
                and any(k.startswith('backbone.') for k in target)):
            parts.append('It looks like a backbone-only checkpoint: give it to the backbone '
                         "(model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...)).")
        else:
            parts.append('Is it the checkpoint of another variant?')
        raise CheckpointMismatchError('\n  '.join(parts))
    return state


def load_backbone_checkpoint(model: torch.nn.Module, spec: str) -> str:
    """Load any supported checkpoint into a backbone strictly; returns the layout."""
    if getattr(model, 'fused', False):
        raise RuntimeError('Load checkpoints before fuse(): a fused model has no BatchNorm keys')
    path = fetch_checkpoint(spec)
    state, layout = convert_state_dict(unwrap_state_dict(load_checkpoint_file(path)))
    state = adapt_to_model(model, state, layout, source=path)
    model.load_state_dict(state, strict=True)
    return layout


def load_model_checkpoint(model: torch.nn.Module, spec: str) -> str:
    """Load a whole detector / segmentor checkpoint (ours or the papers' official
    releases) strictly; returns the layout found."""
    path = fetch_checkpoint(spec)
    state, layout = convert_detector_state_dict(model_state_dict(load_checkpoint_file(path)))
    state = adapt_to_model(model, state, layout, source=path, resize_biases=False)
    model.load_state_dict(state, strict=True)
    return layout
