"""Checkpoint layouts, all converted to ours (``patch_embed.convN``,
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
"""
import re
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from ..errors import CheckpointMismatchError
from ..log import log_message

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


def window_side(table: torch.Tensor) -> int:
    """The window side of a (heads, side * side) attention-bias table."""
    return int(round(table.shape[-1] ** 0.5))


def resize_attention_biases(table: torch.Tensor, window: int) -> torch.Tensor:
    """Bicubic resize of a (heads, w*w) offset-bias table to (heads, window*window)."""
    heads, side = table.shape[0], window_side(table)
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
            log_message(f'{source}: the papers\' official detector layout, converted to ours')
            return dict(checkpoint, state_dict=state)
    return checkpoint
