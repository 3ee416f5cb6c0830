"""EfficientViT-M: memory-efficient ViT with Cascaded Group Attention.

arXiv 2305.07027. "Sandwich" blocks (DW -> FFN -> window attention -> DW ->
FFN, all residual). Each attention head sees its own channel chunk plus the
previous head's output, which deepens the model at no extra width.
"""
from typing import Sequence, Union

import torch
from torch import nn

from .base import EfficientBackbone
from .blocks import (ConvNorm, RelativePositionAttention, Residual, WindowAttention,
                     depthwise_residual, ffn_residual)


class CascadedGroupAttention(RelativePositionAttention):
    """Head i attends over (chunk i + output of head i-1) inside one window."""

    def __init__(self, dim: int, num_heads: int, kernels: Sequence[int], window_size: int,
                 key_dim: int = 16):
        super().__init__(num_heads, window_size)
        self.key_dim, self.value_dim = key_dim, dim // num_heads
        self.scale = key_dim ** -0.5
        self.qkvs = nn.ModuleList(
            ConvNorm(self.value_dim, 2 * key_dim + self.value_dim) for _ in range(num_heads))
        self.dws = nn.ModuleList(
            ConvNorm(key_dim, key_dim, kernels[i], groups=key_dim) for i in range(num_heads))
        self.proj = nn.Sequential(nn.ReLU(), ConvNorm(dim, dim, bn_weight_init=0.0))

    def forward(self, x):
        batch, _, height, width = x.shape
        bias = self.attention_bias(height, width)
        head_inputs = x.chunk(len(self.qkvs), dim=1)
        outputs = []
        feat = head_inputs[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:
                feat = feat + head_inputs[i]
            q, k, v = qkv(feat).split([self.key_dim, self.key_dim, self.value_dim], dim=1)
            q, k, v = dw(q).flatten(2), k.flatten(2), v.flatten(2)
            attn = ((q.transpose(-2, -1) @ k) * self.scale + bias[i]).softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(batch, self.value_dim, height, width)
            outputs.append(feat)
        return self.proj(torch.cat(outputs, dim=1))


class SandwichBlock(nn.Module):
    """DW -> FFN -> window attention -> DW -> FFN, each a residual branch."""

    def __init__(self, dim: int, attention: nn.Module, window_size: int,
                 drop_path_prob: float = 0.0):
        super().__init__()
        self.dw0 = depthwise_residual(dim, drop_path_prob, bn_weight_init=0.0)
        self.ffn0 = ffn_residual(dim, drop_path_prob)
        self.mixer = Residual(WindowAttention(attention, window_size), drop_path_prob)
        self.dw1 = depthwise_residual(dim, drop_path_prob, bn_weight_init=0.0)
        self.ffn1 = ffn_residual(dim, drop_path_prob)

    def forward(self, x):
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


class EfficientViT(EfficientBackbone):
    """EfficientViT-M backbone (M0-M5), features at strides 16/32/64.

    Args:
        window_size: attention window per stage (int for all). 7 everywhere is
            what the papers' COCO detectors use. The ImageNet releases' last
            stage has 4x4 tables (their classification code caps each window at
            the stage's map size for a 224 input): loaded into 7x7 windows they
            are resized bicubically, as the papers' detection code does.
    """

    arch_settings = {
        'm0': dict(embed_dims=(64, 128, 192), depths=(1, 2, 3), num_heads=(4, 4, 4),
                   kernels=(5, 5, 5, 5)),
        'm1': dict(embed_dims=(128, 144, 192), depths=(1, 2, 3), num_heads=(2, 3, 3),
                   kernels=(7, 5, 3, 3)),
        'm2': dict(embed_dims=(128, 192, 224), depths=(1, 2, 3), num_heads=(4, 3, 2),
                   kernels=(7, 5, 3, 3)),
        'm3': dict(embed_dims=(128, 240, 320), depths=(1, 2, 3), num_heads=(4, 3, 4),
                   kernels=(5, 5, 5, 5)),
        'm4': dict(embed_dims=(128, 256, 384), depths=(1, 2, 3), num_heads=(4, 4, 4),
                   kernels=(7, 5, 3, 3)),
        'm5': dict(embed_dims=(192, 288, 384), depths=(1, 3, 4), num_heads=(3, 3, 4),
                   kernels=(7, 5, 3, 3)),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads', 'kernels')

    def __init__(self, arch='m4', window_size: Union[int, Sequence[int]] = 7, **kwargs):
        self.window_sizes = ((window_size,) * 3 if isinstance(window_size, int)
                             else tuple(window_size))
        super().__init__(arch, **kwargs)

    def build_attention(self, stage_index: int) -> nn.Module:
        return CascadedGroupAttention(self.arch['embed_dims'][stage_index],
                                      self.arch['num_heads'][stage_index],
                                      self.arch['kernels'], self.window_sizes[stage_index])

    def build_block(self, stage_index, drop_path_prob):
        return SandwichBlock(self.arch['embed_dims'][stage_index],
                             self.build_attention(stage_index),
                             self.window_sizes[stage_index], drop_path_prob)
