"""The three-stage backbone skeleton shared by SHViT, EfficientViT-M and UniForm.

A family subclass supplies its variant table (``arch_settings``) and
``build_block``; everything a detector needs (``out_indices``, frozen stages,
frozen BatchNorm statistics, gradient checkpointing, stochastic depth,
pretrained loading, deployment folding) lives here once.
"""
import logging
from typing import Dict, List, Sequence, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import BackboneArgumentError
from ..log import log_message
from .blocks import Downsample, Stem, fuse_modules

try:  # mmengine is optional: the latency tool runs where only torch is installed
    from mmengine.model import BaseModule
except ImportError:  # pragma: no cover - exercised on torch-only machines
    class BaseModule(nn.Module):
        """Minimal stand-in for mmengine's BaseModule (keeps ``init_cfg``)."""

        def __init__(self, init_cfg=None):
            super().__init__()
            self.init_cfg = init_cfg

        def init_weights(self):
            pass

NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.SyncBatchNorm)


class FreezableBackbone(BaseModule):
    """Frozen parts stay in eval mode with fixed parameters across ``train()``;
    ``norm_eval`` holds every normalisation layer in eval mode while training."""

    norm_eval = False

    def frozen_modules(self) -> List[nn.Module]:
        raise NotImplementedError

    def _freeze(self):
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, NORM_TYPES):
                    m.eval()
        return self


class Stage(nn.Module):
    """Optional downsampling followed by a sequence of blocks."""

    def __init__(self, blocks: List[nn.Module], downsample: nn.Module = None):
        super().__init__()
        if downsample is not None:
            self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.with_cp = False

    def forward(self, x):
        if hasattr(self, 'downsample'):
            x = self.downsample(x)
        for block in self.blocks:
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class EfficientBackbone(FreezableBackbone):
    """Stem (stride 16) and three stages (strides 16, 32, 64); the stem's finer
    activations too, when asked for (``stem_out_strides``).

    Args:
        arch: a name from ``arch_settings`` or a dict with the same keys.
        in_channels: input image channels.
        out_indices: stages whose outputs are returned (0, 1, 2 -> strides 16/32/64).
        frozen_stages: -1 trains everything; k >= 0 freezes the stem and the
            first k stages (parameters fixed, modules kept in eval mode).
        norm_eval: keep normalisation layers in eval mode while training
            (frozen BatchNorm statistics, as the public detection recipes do).
        with_cp: gradient checkpointing per block (less memory, more compute).
        drop_path_rate: stochastic depth, linearly increasing over the blocks.
        stem_out_strides: also return the stem's activations at these strides (of
            2, 4, 8), before the stages' outputs: finer maps computed from the
            image, for a neck that takes its fine levels from them instead of
            transposed convolutions of the stride-16 map (not the papers' design;
            their detectors' checkpoints have no neck for them).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads any supported
            checkpoint layout strictly (see ``efficientvit_det.checkpoints``).
    """

    arch_settings: Dict[str, dict] = {}
    #: the stride of each stage's output: a 16x stem, then a 2x downsample per stage
    stage_strides: Sequence[int] = (16, 32, 64)
    #: keys an ``arch`` dict must provide
    arch_keys: Sequence[str] = ('embed_dims', 'depths')

    def __init__(self, arch: Union[str, dict], in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 drop_path_rate: float = 0.0, stem_out_strides: Sequence[int] = (),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.arch = self.resolve_arch(arch)
        self.arch_name = arch.lower() if isinstance(arch, str) else 'custom'
        dims, depths = self.arch['embed_dims'], self.arch['depths']
        num_stages = len(dims)
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
            raise BackboneArgumentError(f'out_indices must be a non-empty subset of '
                                        f'0..{num_stages - 1}, got {out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise BackboneArgumentError(f'frozen_stages must be in -1..{num_stages}, '
                                        f'got {frozen_stages}')
        stem_out_strides = tuple(sorted(set(stem_out_strides)))
        if any(s not in Stem.tap_strides for s in stem_out_strides):
            raise BackboneArgumentError(f'stem_out_strides must be a subset of '
                                        f'{Stem.tap_strides}, got {stem_out_strides}')
        self.out_indices = out_indices
        self.stem_out_strides = stem_out_strides
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.patch_embed = Stem(in_channels, dims[0])
        drop_probs = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            first = sum(depths[:i])
            blocks = [self.build_block(i, drop_probs[first + j]) for j in range(depth)]
            downsample = Downsample(dims[i - 1], dim) if i > 0 else None
            stages.append(Stage(blocks, downsample))
        self.stages = nn.ModuleList(stages)
        for stage in self.stages:
            stage.with_cp = with_cp
        taps = self.patch_embed.taps
        outputs = [(taps[s][0], s, f'patch_embed.{taps[s][1]}') for s in stem_out_strides]
        outputs += [(dims[i], self.stage_strides[i], f'stages.{i}') for i in out_indices]
        self.out_channels = [channels for channels, _, _ in outputs]
        self.feature_info = [dict(num_chs=channels, reduction=stride, module=module)
                             for channels, stride, module in outputs]
        self.fused = False
        self._freeze()

    @classmethod
    def resolve_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise BackboneArgumentError(f'Unknown {cls.__name__} arch {arch!r}; known: '
                                            f'{sorted(cls.arch_settings)} (or a dict with keys '
                                            f'{list(cls.arch_keys)})')
            return dict(cls.arch_settings[key])
        if not isinstance(arch, dict):
            raise BackboneArgumentError(f'arch must be a name or a dict, '
                                        f'got {type(arch).__name__}')
        unknown = [k for k in arch if k not in cls.arch_keys]
        if unknown:  # a typo would otherwise be ignored and the default variant built
            raise BackboneArgumentError(f'{cls.__name__} arch dict has unknown key(s) '
                                        f'{unknown}; it takes {list(cls.arch_keys)}')
        missing = [k for k in cls.arch_keys if k not in arch]
        if missing:
            raise BackboneArgumentError(f'{cls.__name__} arch dict is missing {missing}; '
                                        f'it needs {list(cls.arch_keys)}')
        lengths = {k: len(arch[k]) for k in cls.arch_keys if isinstance(arch[k], (list, tuple))}
        if len(set(lengths.values())) > 1:
            raise BackboneArgumentError(f'{cls.__name__} arch entries must have one value '
                                        f'per stage, got lengths {lengths}')
        return dict(arch)

    def build_block(self, stage_index: int, drop_path_prob: float) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        x, outs = self.patch_embed.forward_taps(x, self.stem_out_strides)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
            if i == max(self.out_indices):
                break  # later stages would be computed for nothing
        return tuple(outs)

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        return [self.patch_embed] + list(self.stages[:self.frozen_stages])

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            name = f'{type(self).__name__}({self.arch_name!r})'
            if cfg.get('checkpoint') is None:
                log_message(f'{name}: no pretrained checkpoint given, training the backbone '
                            'from scratch', logging.WARNING)
                return
            from ..checkpoints import load_backbone_checkpoint
            layout = load_backbone_checkpoint(self, cfg['checkpoint'])
            log_message(f'{name}: loaded {cfg["checkpoint"]} ({layout} layout)')
        else:
            super().init_weights()

    def fuse(self):
        """Fold every Conv+BN (and depthwise residual identities) for deployment.

        Inference-only afterwards: BatchNorm is gone, so training would differ.
        """
        if not self.fused:
            self.eval()
            fuse_modules(self)
            self.fused = True
        return self
