"""Checkpoint layouts, conversion and safe loading (torch only; mmengine optional).

Layouts a user brings, all converted to ours (``patch_embed.convN``,
``stages.N.downsample.{res1,patchmerge,res2}``, ``stages.N.blocks.M``):

* ``official``: the SHViT / EfficientViT ImageNet releases (``blocks1/2/3``,
  downsampling as the first three entries of ``blocksN``, Conv+BN as ``c``/``bn``);
* ``timm``: ``timm.create_model('shvit_s4' | 'efficientvit_m4')`` and the hub;
* ``efficientvit_det``: ours, which is also the UniForm reference layout;
* any of them wrapped by mmdet/mmseg (``state_dict`` + ``backbone.`` prefix),
  by the releases (``model``) or by ``module.`` (DataParallel).

Loading is strict: a classification head is dropped, attention-bias tables are
resized to the model's window, and anything else missing or unexpected raises
:class:`CheckpointMismatchError` naming the keys, so a wrong variant never
loads "successfully".
"""
import os
import pickle
import re
import tempfile
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F

CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'efficientvit_det', 'checkpoints')

#: ImageNet-1k releases of the papers (official layout).
RELEASE_URLS = {
    **{f'shvit_{v}': f'https://github.com/ysj9909/SHViT/releases/download/v1.0/shvit_{v}.pth'
       for v in ('s1', 's2', 's3', 's4')},
    **{f'efficientvit_{v}': ('https://github.com/xinyuliu-jeffrey/EfficientVit_Model_Zoo/'
                             f'releases/download/v1.0/efficientvit_{v}.pth')
       for v in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
}
#: The same weights on the Hugging Face hub, in timm's layout.
HUB_IDS = {
    **{f'shvit_{v}': f'timm/shvit_{v}.in1k' for v in ('s1', 's2', 's3', 's4')},
    **{f'efficientvit_{v}': f'timm/efficientvit_{v}.r224_in1k'
       for v in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
}


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not fit the model (wrong variant, wrong family)."""


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


def load_checkpoint_file(path: str, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` plus the runner allow-list.

    A pickled object outside the allow-list raises :class:`UnsafeCheckpointError`
    naming it; the unpickler stops before constructing (let alone calling) it.
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
        match = re.search(r'GLOBAL ([\w.]+(\([^)]*\))?)', str(err))
        culprit = match.group(1) if match else str(err).splitlines()[0]
        raise UnsafeCheckpointError(
            f'Refusing to load {path}: it pickles {culprit!r}, which is not a tensor '
            f'or one of the allowed checkpoint classes. The object was not executed. '
            f'Only load it with weights_only=False if you trust where it came from.'
        ) from None


def fetch_checkpoint(spec: str) -> str:
    """Resolve a checkpoint spec to a local file.

    ``spec`` is a path, an ``http(s)://`` URL (downloaded once into
    ``CACHE_DIR``), a Hugging Face hub id ``hf-hub:ORG/NAME`` or a known backbone
    name with ``release:`` / ``hub:`` (e.g. ``release:shvit_s4``).
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
        return hf_hub_download(spec[len('hf-hub:'):], 'model.safetensors')
    if spec.startswith(('http://', 'https://')):
        os.makedirs(CACHE_DIR, exist_ok=True)
        target = os.path.join(CACHE_DIR, os.path.basename(spec.split('?')[0]))
        if not os.path.exists(target):
            partial = tempfile.NamedTemporaryFile(dir=CACHE_DIR, suffix='.partial', delete=False)
            partial.close()
            try:
                torch.hub.download_url_to_file(spec, partial.name, progress=True)
                os.replace(partial.name, target)
            finally:
                if os.path.exists(partial.name):
                    os.remove(partial.name)
        return target
    return spec


# ----------------------------------------------------------------------------- layouts

_PATCH_EMBED = re.compile(r'^patch_embed\.(\d)\.')
_OFFICIAL_BLOCKS = re.compile(r'^blocks(\d)\.(\d+)\.')
_TIMM_DOWNSAMPLE = re.compile(r'^stages\.(\d)\.downsample\.(\d)\.')
_DOWNSAMPLE_PARTS = ['res1.0', 'res1.1', 'patchmerge', 'res2.0', 'res2.1']


def unwrap_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The backbone tensors of a release / timm / mmengine checkpoint."""
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model', 'state_dict_ema'):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointMismatchError('Checkpoint holds no state dict of tensors (looked under '
                                      '"state_dict", "model" and the top level)')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in checkpoint.items()}
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


def _describe(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return f'{len(keys)} [{shown}{", ..." if len(keys) > limit else ""}]'


def adapt_to_model(model: torch.nn.Module, state: Dict[str, torch.Tensor], layout: str,
                   source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Resize bias tables for the model's windows and check the fit strictly."""
    target = model.state_dict()
    state = dict(state)
    for key, value in state.items():
        if (key.endswith('attention_biases') and key in target
                and value.shape != target[key].shape and value.shape[0] == target[key].shape[0]):
            side = int(round(target[key].shape[1] ** 0.5))
            state[key] = resize_attention_biases(value, side)
    missing = sorted(k for k in target if k not in state)
    unexpected = sorted(k for k in state if k not in target)
    mismatched = sorted(f'{k} {tuple(state[k].shape)} vs model {tuple(target[k].shape)}'
                        for k in target if k in state and state[k].shape != target[k].shape)
    if missing or unexpected or mismatched:
        model_name = f'{type(model).__name__}({getattr(model, "arch_name", "")!r})'
        parts = [f'{source} ({layout} layout) does not fit {model_name}:']
        if missing:
            parts.append(f'missing keys: {_describe(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {_describe(unexpected)}')
        if mismatched:
            parts.append(f'shape mismatches: {_describe(mismatched, 4)}')
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
