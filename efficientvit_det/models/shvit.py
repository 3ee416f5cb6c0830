"""SHViT: Single-Head Vision Transformer with memory-efficient macro design.

arXiv 2401.16456. Each block is depthwise conv -> (single-head attention on a
partial slice of channels) -> FFN, all residual. Stage 1 has no attention.
There is no positional bias, so any input size works without windows.
"""
import torch
from torch import nn

from .base import EfficientBackbone
from .blocks import ConvNorm, Residual, depthwise_residual, ffn_residual


class SingleHeadAttention(nn.Module):
    """Single-head self-attention over all positions on the first ``partial_dim`` channels.

    The remaining channels pass untouched; both are concatenated and projected.
    """

    def __init__(self, dim: int, partial_dim: int, qk_dim: int = 16):
        super().__init__()
        self.dim, self.partial_dim, self.qk_dim = dim, partial_dim, qk_dim
        self.scale = qk_dim ** -0.5
        self.pre_norm = nn.GroupNorm(1, partial_dim)
        self.qkv = ConvNorm(partial_dim, 2 * qk_dim + partial_dim)
        self.proj = nn.Sequential(nn.ReLU(), ConvNorm(dim, dim, bn_weight_init=0.0))

    def forward(self, x):
        batch, _, height, width = x.shape
        attended, passed = x.split([self.partial_dim, self.dim - self.partial_dim], dim=1)
        qkv = self.qkv(self.pre_norm(attended)).flatten(2)
        q, k, v = qkv.split([self.qk_dim, self.qk_dim, self.partial_dim], dim=1)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        attended = (v @ attn.transpose(-2, -1)).view(batch, self.partial_dim, height, width)
        return self.proj(torch.cat([attended, passed], dim=1))


class SHViTBlock(nn.Module):
    def __init__(self, dim: int, partial_dim: int, with_attention: bool,
                 drop_path_prob: float = 0.0):
        super().__init__()
        self.conv = depthwise_residual(dim, drop_path_prob, bn_weight_init=0.0)
        self.mixer = (Residual(SingleHeadAttention(dim, partial_dim), drop_path_prob)
                      if with_attention else nn.Identity())
        self.ffn = ffn_residual(dim, drop_path_prob)

    def forward(self, x):
        return self.ffn(self.mixer(self.conv(x)))


class SHViT(EfficientBackbone):
    """SHViT backbone (variants S1-S4), features at strides 16/32/64."""

    arch_settings = {
        's1': dict(embed_dims=(128, 224, 320), depths=(2, 4, 5), partial_dims=(32, 48, 68),
                   attention=(False, True, True)),
        's2': dict(embed_dims=(128, 308, 448), depths=(2, 4, 5), partial_dims=(32, 66, 96),
                   attention=(False, True, True)),
        's3': dict(embed_dims=(192, 352, 448), depths=(3, 5, 5), partial_dims=(48, 75, 96),
                   attention=(False, True, True)),
        's4': dict(embed_dims=(224, 336, 448), depths=(4, 7, 6), partial_dims=(48, 72, 96),
                   attention=(False, True, True)),
    }
    arch_keys = ('embed_dims', 'depths', 'partial_dims', 'attention')

    def __init__(self, arch='s4', **kwargs):
        super().__init__(arch, **kwargs)

    def build_block(self, stage_index, drop_path_prob):
        return SHViTBlock(self.arch['embed_dims'][stage_index],
                          self.arch['partial_dims'][stage_index],
                          self.arch['attention'][stage_index], drop_path_prob)
