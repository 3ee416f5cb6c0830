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
"""
from typing import List, Sequence, Union

import torch.nn.functional as F
from torch import nn

from .base import BaseModule

EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')


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
        if init_cfg is None:  # the papers' detectors: their neck trained from this init
            init_cfg = [dict(type='Xavier', layer='Conv2d', distribution='uniform'),
                        dict(type='Kaiming', layer='ConvTranspose2d', mode='fan_out',
                             nonlinearity='relu', distribution='normal')]
        super().__init__(init_cfg=init_cfg)
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
        finest = self.in_strides[0]
        strides = [finest >> k for k in range(self.num_extra_trans_convs, 0, -1)]
        strides += self.in_strides
        while len(strides) < self.num_outs:
            strides.append(strides[-1] * 2)
        return strides[:self.num_outs]

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
