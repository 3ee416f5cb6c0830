"""Strict loading: a checkpoint fits the model exactly or is refused, naming keys.

A classification head is dropped and attention-bias tables are resized to a
backbone's windows; anything else missing, unexpected or mis-shaped raises
:class:`CheckpointMismatchError`, so a wrong variant never loads "successfully".
"""
import os
from typing import Dict, List

import torch

from ..errors import CheckpointMismatchError, NonFiniteWeightsError
from ..log import log_message
from .fetch import fetch_checkpoint
from .layouts import (convert_detector_checkpoint, convert_detector_state_dict,
                      convert_state_dict, model_state_dict, resize_attention_biases,
                      unwrap_state_dict, window_side)
from .safe_load import load_checkpoint_file


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
    resized = []
    for key, value in state.items():
        if (resize_biases and key.endswith('attention_biases') and key in target
                and value.shape != target[key].shape and value.shape[0] == target[key].shape[0]):
            old, side = window_side(value), window_side(target[key])
            state[key] = resize_attention_biases(value, side)
            resized.append(f'{key} {old}x{old} -> {side}x{side}')
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
        windows = sorted({(window_side(state[k]), window_side(target[k])) for k in target
                          if k.endswith('attention_biases') and k in state
                          and state[k].shape != target[k].shape})
        if windows:
            found = ', '.join(f'{a}x{a} where the model has {b}x{b}' for a, b in windows)
            parts.append(f'Its attention-bias tables are for other windows ({found}); a '
                         "trained model's are not resized, its numbers hold only with its own "
                         "windows. The papers' EfficientViT detectors have 7x7 windows in every "
                         'stage: 4x4 last-stage tables are the ImageNet classification layout '
                         '(windows capped at a 224 input), not a released detector. For a '
                         'detector of your own, build the backbone with its windows '
                         '(window_size=...).')
        if (hasattr(model, 'backbone') and not any(k.startswith('backbone.') for k in state)
                and any(k.startswith('backbone.') for k in target)):
            parts.append('It looks like a backbone-only checkpoint: give it to the backbone '
                         "(model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...)).")
        else:
            parts.append('Is it the checkpoint of another variant?')
        raise CheckpointMismatchError('\n  '.join(parts))
    broken = sorted(key for key, value in state.items() if torch.is_tensor(value)
                    and value.is_floating_point() and not bool(torch.isfinite(value).all()))
    if broken:  # would load, and predict nothing or train on NaN, saying nothing
        raise NonFiniteWeightsError(
            f'{source} holds NaN or inf values in {_describe(broken)}: the weights of a '
            'run that diverged? Load an earlier checkpoint of that run')
    if resized:
        log_message(f'{source}: attention-bias tables resized bicubically to the model\'s '
                    f'windows (as the papers\' detection code does): {", ".join(resized)}')
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


def read_checkpoint(spec: str, map_location='cpu'):
    """The checkpoint ``spec`` names (a path, URL, ``release:`` or ``hub:`` name), read
    safely, with a paper's official detector layout converted to ours: what the
    ``safe:`` and ``release:`` schemes give mmengine's ``load_from`` / ``--resume``."""
    path = fetch_checkpoint(os.path.expanduser(spec))
    return convert_detector_checkpoint(load_checkpoint_file(path, map_location), path)
