"""Building blocks shared by SHViT, EfficientViT-M and UniForm.

All three families are BatchNorm-only, 16x-patchify, three-stage networks; the
pieces below are written once and every one of them knows how to fold itself
into plain convolutions for deployment (``fuse()``).

Module names follow one layout for the three families (the layout of the
UniForm reference code): ``patch_embed.conv1.conv``, ``stages.N.downsample``,
``stages.N.blocks.M``; a Conv+BN unit holds ``conv`` and ``bn``.
"""
import itertools
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvNorm(nn.Module):
    """Conv (no bias) followed by BatchNorm; ``norm=False`` gives a biased conv.

    The BatchNorm weight can start at 0 so that a residual branch starts as an
    identity (the papers do this for every branch's last projection).
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=None,
                 groups=1, bn_weight_init=1.0, norm=True):
        super().__init__()
        if padding is None:
            padding = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
            nn.init.constant_(self.bn.weight, bn_weight_init)
            nn.init.zeros_(self.bn.bias)

    def forward(self, x):
        x = self.conv(x)
        return self.bn(x) if hasattr(self, 'bn') else x

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """Fold the BatchNorm (running statistics) into the convolution."""
        conv = self.conv
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True,
                          device=conv.weight.device, dtype=conv.weight.dtype)
        if not hasattr(self, 'bn'):
            fused.load_state_dict(conv.state_dict())
            return fused
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole residual branches per sample."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Residual(nn.Module):
    """``x + m(x)`` with optional stochastic depth on the branch."""

    def __init__(self, m: nn.Module, drop_path_prob: float = 0.0):
        super().__init__()
        self.m = m
        self.drop_path_prob = drop_path_prob

    def forward(self, x):
        return x + drop_path(self.m(x), self.drop_path_prob, self.training)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        """A depthwise conv branch absorbs the identity into its kernel centre."""
        fused_branch = self.m.fuse() if hasattr(self.m, 'fuse') else self.m
        if not _is_identity_foldable(fused_branch):
            self.m = fused_branch
            return self
        centre = (fused_branch.kernel_size[0] // 2, fused_branch.kernel_size[1] // 2)
        fused_branch.weight[:, 0, centre[0], centre[1]] += 1.0
        return fused_branch


def _is_identity_foldable(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels
            and m.stride == (1, 1) and all(k % 2 == 1 for k in m.kernel_size)
            and m.padding == (m.kernel_size[0] // 2, m.kernel_size[1] // 2))


def depthwise_residual(dim: int, drop_path_prob: float = 0.0,
                       bn_weight_init: float = 1.0) -> Residual:
    """3x3 depthwise Conv+BN residual: the cheap local 'token interaction'."""
    return Residual(ConvNorm(dim, dim, 3, groups=dim, bn_weight_init=bn_weight_init),
                    drop_path_prob)


class FFN(nn.Module):
    """1x1 expand -> ReLU -> 1x1 project (BN initialised to zero)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.pw1 = ConvNorm(dim, hidden_dim)
        self.act = nn.ReLU()
        self.pw2 = ConvNorm(hidden_dim, dim, bn_weight_init=0.0)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))


def ffn_residual(dim: int, drop_path_prob: float = 0.0) -> Residual:
    return Residual(FFN(dim, 2 * dim), drop_path_prob)


class Stem(nn.Module):
    """16x patchify: four 3x3 stride-2 Conv+BN, channels C/8 -> C/4 -> C/2 -> C."""

    #: strides of the activations that ``forward_taps`` can return
    tap_strides = (2, 4, 8)

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        widths = [dim // 8, dim // 4, dim // 2, dim]
        # stride -> (channels, activation module) of each tap: what feature_info names
        self.taps = {stride: (width, f'act{i + 1}')
                     for i, (stride, width) in enumerate(zip(self.tap_strides, widths))}
        self.conv1 = ConvNorm(in_channels, widths[0], 3, 2)
        self.act1 = nn.ReLU()
        self.conv2 = ConvNorm(widths[0], widths[1], 3, 2)
        self.act2 = nn.ReLU()
        self.conv3 = ConvNorm(widths[1], widths[2], 3, 2)
        self.act3 = nn.ReLU()
        self.conv4 = ConvNorm(widths[2], widths[3], 3, 2)

    def forward(self, x):
        return self.forward_taps(x)[0]

    def forward_taps(self, x: torch.Tensor,
                     strides: Sequence[int] = ()) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The stem's output and its activations at ``strides`` (finest first): maps
        computed from the image at strides finer than 16, for a pyramid's fine levels."""
        taps = []
        for stride, conv, act in zip(self.tap_strides, (self.conv1, self.conv2, self.conv3),
                                     (self.act1, self.act2, self.act3)):
            x = act(conv(x))
            if stride in strides:
                taps.append(x)
        return self.conv4(x), taps


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (reduction 0.25)."""

    def __init__(self, dim: int, ratio: float = 0.25):
        super().__init__()
        hidden = make_divisible(dim * ratio)
        self.conv1 = ConvNorm(dim, hidden, norm=False)
        self.act = nn.ReLU()
        self.conv2 = ConvNorm(hidden, dim, norm=False)

    def forward(self, x):
        gate = self.conv2(self.act(self.conv1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


class PatchMerging(nn.Module):
    """2x downsampling: 1x1 to 4C, 3x3 depthwise stride 2, SE, 1x1 to C_out."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hidden = 4 * dim
        self.conv1 = ConvNorm(dim, hidden)
        self.act1 = nn.ReLU()
        self.conv2 = ConvNorm(hidden, hidden, 3, 2, groups=hidden)
        self.act2 = nn.ReLU()
        self.se = SqueezeExcite(hidden)
        self.conv3 = ConvNorm(hidden, out_dim)

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.conv3(self.se(x))


class Downsample(nn.Module):
    """[DW, FFN] residuals -> PatchMerging -> [DW, FFN] residuals between stages."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.res1 = nn.Sequential(depthwise_residual(dim), ffn_residual(dim))
        self.patchmerge = PatchMerging(dim, out_dim)
        self.res2 = nn.Sequential(depthwise_residual(out_dim), ffn_residual(out_dim))

    def forward(self, x):
        return self.res2(self.patchmerge(self.res1(x)))


class RelativePositionAttention(nn.Module):
    """Base of window attentions with a learnable logit bias per |dy|, |dx| token offset.

    The table covers a ``window x window`` window (one row per head); windows
    smaller than that (a feature map smaller than the window) use the sub-table
    of the offsets they contain, so any input size works.
    """

    def __init__(self, num_heads: int, window_size: int):
        super().__init__()
        self.window_size = window_size
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self._index_cache: Dict[Tuple[int, int, torch.device], torch.Tensor] = {}

    def _index(self, height: int, width: int, device) -> torch.Tensor:
        key = (height, width, device)
        if key not in self._index_cache:
            points = list(itertools.product(range(height), range(width)))
            index = [abs(p[0] - q[0]) * self.window_size + abs(p[1] - q[1])
                     for p in points for q in points]
            self._index_cache[key] = torch.tensor(index, device=device).view(
                height * width, height * width)
        return self._index_cache[key]

    def attention_bias(self, height: int, width: int) -> torch.Tensor:
        """(heads, HW, HW) bias for a ``height x width`` window."""
        return self.attention_biases[:, self._index(height, width, self.attention_biases.device)]


class WindowAttention(nn.Module):
    """Runs a per-window attention module over 7x7 (``window_size``) windows.

    The whole attention module (its convs included) sees each window on its
    own. Maps that are not a multiple of the window are zero-padded at the
    bottom/right (padded tokens take part, as in the reference) and cropped
    back; a map that fits in one window is processed whole, without padding.
    """

    def __init__(self, attn: nn.Module, window_size: int):
        super().__init__()
        self.attn = attn
        self.window_size = window_size

    def forward(self, x):
        batch, channels, height, width = x.shape
        ws = self.window_size
        if height <= ws and width <= ws:
            return self.attn(x)
        pad_b, pad_r = (-height) % ws, (-width) % ws
        x = F.pad(x, (0, pad_r, 0, pad_b))
        rows, cols = (height + pad_b) // ws, (width + pad_r) // ws
        windows = (x.view(batch, channels, rows, ws, cols, ws).permute(0, 2, 4, 1, 3, 5)
                   .reshape(batch * rows * cols, channels, ws, ws))
        windows = self.attn(windows)
        x = (windows.view(batch, rows, cols, channels, ws, ws).permute(0, 3, 1, 4, 2, 5)
             .reshape(batch, channels, rows * ws, cols * ws))
        return x[:, :, :height, :width].contiguous()


def fuse_modules(module: nn.Module) -> nn.Module:
    """Replace, depth first, every child that can fold itself by its folded form."""
    for name, child in module.named_children():
        if isinstance(child, Residual):
            fuse_modules(child.m)
        if hasattr(child, 'fuse'):
            setattr(module, name, child.fuse())
        else:
            fuse_modules(child)
    return module
