"""A feature pyramid for stride-16/32/64 backbones.

A stock FPN only re-projects the backbone's strides, so Mask R-CNN's RPN and
RoI extractor (strides 4-64) or RetinaNet (8-128) would be fed the wrong maps:
the detector trains but "does not learn anything". This neck adds 2x2
stride-2 transposed convolutions above the finest (top-down merged) lateral to
create the stride-8 and stride-4 levels, and optional stride-2 convs below the
coarsest for stride 128 and beyond.

It computes what the papers' COCO detectors call ``EfficientViTFPN``; their
checkpoints load into it through ``efficientvit_det.checkpoints`` (the key map
is there).

:class:`PyramidAdapter` serves models whose neck is not a plain FPN (RTMDet's
PAFPN, DINO's channel mapper) or that have none (UperNet, Mask2Former): it hands
them the levels their own backbone gave, at its strides.
"""
import math
from typing import List, Optional, Sequence, Union

import torch.nn.functional as F
from torch import nn

from .base import BaseModule

EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')
#: the papers' detectors: their neck trained from this init
NECK_INIT = [dict(type='Xavier', layer='Conv2d', distribution='uniform'),
             dict(type='Kaiming', layer='ConvTranspose2d', mode='fan_out',
                  nonlinearity='relu', distribution='normal')]


class TransposedFPN(BaseModule):
    """FPN + transposed-conv finer levels (+ extra coarser levels).

    Args:
        in_channels: channels of the backbone features (finest first).
        out_channels: channels of every pyramid level.
        num_outs: number of output levels (finest first). Fewer than the levels
            built drops the coarsest; more adds extra levels below the coarsest.
        num_extra_trans_convs: finer levels made by transposed convolutions
            (2 for strides 4/8 from a stride-16 input, 1 for stride 8).
        add_extra_convs: False (max-pool the last output for extra levels) or one
            of 'on_input', 'on_lateral', 'on_output': 3x3 stride-2 convs on that.
        relu_before_extra_convs: ReLU before every extra conv but the first.
        in_strides: strides of the backbone features, used for ``out_strides``.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int,
                 num_extra_trans_convs: int = 0,
                 add_extra_convs: Union[bool, str] = False,
                 relu_before_extra_convs: bool = False,
                 in_strides: Sequence[int] = (16, 32, 64), init_cfg=None):
        super().__init__(init_cfg=init_cfg or NECK_INIT)
        if len(in_strides) != len(in_channels):
            raise ValueError(f'in_strides {tuple(in_strides)} must give one stride per input '
                             f'(in_channels {tuple(in_channels)})')
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs and add_extra_convs not in EXTRA_CONV_SOURCES:
            raise ValueError(f'add_extra_convs must be False or one of {EXTRA_CONV_SOURCES}, '
                             f'got {add_extra_convs!r}')
        self.in_channels = list(in_channels)
        self.in_strides = list(in_strides)
        self.num_outs = num_outs
        self.num_extra_trans_convs = num_extra_trans_convs
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs

        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.trans_convs = nn.ModuleList(
            nn.ConvTranspose2d(out_channels, out_channels, 2, stride=2)
            for _ in range(num_extra_trans_convs))
        num_levels = num_extra_trans_convs + len(in_channels)
        self.fpn_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1)
            for _ in range(min(num_levels, num_outs)))
        num_extra = max(0, num_outs - num_levels)
        self.extra_convs = nn.ModuleList()
        if add_extra_convs:
            for i in range(num_extra):
                source = in_channels[-1] if i == 0 and add_extra_convs == 'on_input' \
                    else out_channels
                self.extra_convs.append(nn.Conv2d(source, out_channels, 3, stride=2, padding=1))

    @property
    def out_strides(self) -> List[int]:
        """Stride of every output level, finest first."""
        return transposed_fpn_strides(self.in_strides, self.num_extra_trans_convs,
                                      self.num_outs)

    def forward(self, inputs):
        if len(inputs) != len(self.lateral_convs):
            raise ValueError(f'{type(self).__name__} expects {len(self.lateral_convs)} inputs, '
                             f'got {len(inputs)}')
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode='nearest')
        finer = []
        for trans in self.trans_convs:
            finer.insert(0, trans(finer[0] if finer else laterals[0]))
        levels = finer + laterals
        outs = [conv(x) for conv, x in zip(self.fpn_convs, levels)]
        if len(outs) < self.num_outs:
            if not self.add_extra_convs:
                while len(outs) < self.num_outs:
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                source = {'on_input': inputs[-1], 'on_lateral': laterals[-1],
                          'on_output': outs[-1]}[self.add_extra_convs]
                outs.append(self.extra_convs[0](source))
                for conv in self.extra_convs[1:]:
                    x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(conv(x))
        return tuple(outs)


def transposed_fpn_strides(in_strides: Sequence[int], num_extra_trans_convs: int,
                           num_outs: int) -> List[int]:
    """The strides a :class:`TransposedFPN` outputs, finest first."""
    finest = in_strides[0]
    strides = [finest >> k for k in range(num_extra_trans_convs, 0, -1)] + list(in_strides)
    while len(strides) < num_outs:
        strides.append(strides[-1] * 2)
    return strides[:num_outs]


def resampler(in_channels: int, out_channels: int, factor: float) -> nn.Module:
    """A map brought from its stride to ``stride * factor`` (a power of two, or its
    inverse): 2x2 stride-2 transposed convs to go finer, 3x3 stride-2 convs (ReLU
    between) to go coarser, a 1x1 conv for a width alone; the first sets the width."""
    steps = round(math.log2(factor))
    if 2 ** steps != factor:
        raise ValueError(f'resampling factor must be a power of two, got {factor}')
    if steps == 0:
        return nn.Identity() if in_channels == out_channels else \
            nn.Conv2d(in_channels, out_channels, 1)
    layers = []
    for k in range(abs(steps)):
        width_in = in_channels if k == 0 else out_channels
        if steps < 0:
            layers.append(nn.ConvTranspose2d(width_in, out_channels, 2, stride=2))
        else:
            layers += [nn.ReLU()] if k else []
            layers.append(nn.Conv2d(width_in, out_channels, 3, stride=2, padding=1))
    return nn.Sequential(*layers)


class PyramidAdapter(BaseModule):
    """The backbone's levels brought to the strides and widths a model's neck or
    heads read (which another backbone gave them).

    Output level ``i`` is input ``sources[i]`` resampled from its stride to
    ``out_strides[i]`` (:func:`resampler`) and cropped to the size that stride has
    on the padded image (an upsampled coarse map can be one cell larger).

    Args:
        in_channels / in_strides: the backbone's levels, finest first.
        out_channels / out_strides: the levels to hand on, in the order the
            consumer reads them (repeated strides allowed: dilated backbones).
        sources: the input each output comes from (default: the last outputs take
            the last inputs in order, earlier outputs the first input).
    """

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int],
                 out_channels: Sequence[int], out_strides: Sequence[int],
                 sources: Optional[Sequence[int]] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg or NECK_INIT)
        if len(in_channels) != len(in_strides) or len(out_channels) != len(out_strides):
            raise ValueError('PyramidAdapter: one channel count per stride, in and out')
        if sources is None:
            sources = end_aligned_sources(len(in_strides), len(out_strides))
        if len(sources) != len(out_strides) or not all(0 <= j < len(in_strides)
                                                       for j in sources):
            raise ValueError(f'PyramidAdapter: sources {list(sources)} must name one of the '
                             f'{len(in_strides)} inputs for each of the {len(out_strides)} '
                             'outputs')
        self.in_channels, self.in_strides = list(in_channels), list(in_strides)
        self.out_channels, self.out_strides = list(out_channels), list(out_strides)
        self.sources = list(sources)
        self.resamplers = nn.ModuleList(
            resampler(self.in_channels[j], width, stride / self.in_strides[j])
            for j, width, stride in zip(self.sources, self.out_channels, self.out_strides))

    def forward(self, inputs):
        if len(inputs) != len(self.in_strides):
            raise ValueError(f'{type(self).__name__} expects {len(self.in_strides)} inputs, '
                             f'got {len(inputs)}')
        height, width = inputs[0].shape[-2:]  # the finest input is exact on the padded image
        outs = []
        for j, stride, resample in zip(self.sources, self.out_strides, self.resamplers):
            scale = self.in_strides[0] / stride
            size = (math.ceil(height * scale), math.ceil(width * scale))
            outs.append(resample(inputs[j])[..., :size[0], :size[1]])
        return tuple(outs)


def end_aligned_sources(num_inputs: int, num_outputs: int) -> List[int]:
    """The input of each output when the deepest output takes the deepest input,
    the one before it the one before, ...: every stage's features reach the model
    (none is computed for nothing), each level moved by the same factor."""
    shift = num_outputs - num_inputs
    return [max(0, i - shift) for i in range(num_outputs)]
