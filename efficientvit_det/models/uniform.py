"""UniForm: EfficientViT's macro design with Reuse Attention.

arXiv 2412.02344. One attention matrix per window is computed and reused by
every head; values need no projection but pass multi-scale depthwise convs
(kernels 1/3/5/7), which keeps memory traffic low on edge devices.
"""
import torch
from torch import nn

from .blocks import ConvNorm, RelativePositionAttention
from .efficientvit import EfficientViT

VALUE_KERNELS = (1, 3, 5, 7)


class ReuseAttention(RelativePositionAttention):
    """One shared softmax(q^T k + bias) applied to each multi-scale value chunk.

    The bias table keeps one row per head (checkpoint layout of the reference
    ImageNet model) but the single shared matrix uses row 0.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, key_dim: int = 16):
        super().__init__(num_heads, window_size)
        self.qk_dim = dim // 4
        self.chunk_dim = dim // num_heads
        self.scale = key_dim ** -0.5
        self.qkvs = ConvNorm(dim, 2 * self.qk_dim)
        self.dws = ConvNorm(self.qk_dim, self.qk_dim, 7, groups=self.qk_dim)
        self.mix = nn.ModuleList(
            nn.Conv2d(self.chunk_dim, self.chunk_dim, k, padding=k // 2, groups=self.chunk_dim)
            for k in VALUE_KERNELS[:num_heads])
        self.proj = nn.Sequential(nn.ReLU(), ConvNorm(dim, dim, bn_weight_init=0.0))

    def shared_attention(self, x):
        """The one (B, HW, HW) attention matrix of a window."""
        q, k = self.qkvs(x).split([self.qk_dim, self.qk_dim], dim=1)
        q, k = self.dws(q).flatten(2), k.flatten(2)
        bias = self.attention_bias(x.shape[2], x.shape[3])[0]
        return ((q.transpose(-2, -1) @ k) * self.scale + bias).softmax(dim=-1)

    def forward(self, x):
        batch, _, height, width = x.shape
        attn_t = self.shared_attention(x).transpose(-2, -1)
        outputs = [(mix(chunk).flatten(2) @ attn_t).view(batch, self.chunk_dim, height, width)
                   for mix, chunk in zip(self.mix, x.chunk(len(self.mix), dim=1))]
        return self.proj(torch.cat(outputs, dim=1))


class UniForm(EfficientViT):
    """UniForm backbone (XS/S/M/L), features at strides 16/32/64."""

    arch_settings = {
        'xs': dict(embed_dims=(64, 128, 192), depths=(1, 2, 2), num_heads=(4, 4, 4)),
        's': dict(embed_dims=(128, 144, 192), depths=(1, 2, 2), num_heads=(4, 4, 4)),
        'm': dict(embed_dims=(128, 240, 320), depths=(1, 2, 3), num_heads=(4, 3, 4)),
        'l': dict(embed_dims=(192, 288, 384), depths=(1, 2, 3), num_heads=(3, 3, 4)),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads')

    def __init__(self, arch='l', **kwargs):
        super().__init__(arch, **kwargs)

    def build_attention(self, stage_index):
        return ReuseAttention(self.arch['embed_dims'][stage_index],
                              self.arch['num_heads'][stage_index],
                              self.window_sizes[stage_index])
