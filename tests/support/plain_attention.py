"""Window attentions written plainly from the papers' descriptions, to check ours.

Deliberately naive and independent of the library's code paths: explicit loops over
windows, samples and heads, the relative-position bias looked up token pair by token
pair, BatchNorm applied from its formula. Only the weights are read from our modules
(by their checkpoint names); sizes come from the papers (key dim 16, value kernels
1/3/5/7 for Reuse Attention).
"""
import math
from functools import lru_cache

import torch
import torch.nn.functional as F

KEY_DIM = 16
REUSE_VALUE_KERNELS = (1, 3, 5, 7)


def conv_norm(unit, x):
    """Conv without bias, then inference BatchNorm: (y - mean) / sqrt(var + eps) * w + b."""
    conv, bn = unit.conv, unit.bn
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (y - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]


@lru_cache(maxsize=None)
def _offset_index(height, width, window):
    """Entry (p, q): position of (|dy|, |dx|) between tokens p and q in a window-wide table."""
    tokens = [(y, x) for y in range(height) for x in range(width)]
    return torch.tensor([[abs(py - qy) * window + abs(px - qx) for (qy, qx) in tokens]
                         for (py, px) in tokens])


def relative_bias(table_row, height, width, window):
    return table_row[_offset_index(height, width, window)]


def attention_matrix(q, k, bias):
    """softmax over keys of q^T k / sqrt(16) + bias, for one sample: (tokens, tokens)."""
    logits = q.reshape(q.shape[0], -1).t() @ k.reshape(k.shape[0], -1) / math.sqrt(KEY_DIM)
    return torch.softmax(logits + bias, dim=1)


def attend(value, attn):
    """Each query token takes the attention-weighted sum of the value tokens."""
    channels, height, width = value.shape
    return (value.reshape(channels, -1) @ attn.t()).reshape(channels, height, width)


def in_windows(x, window, attention):
    """Zero-pad bottom/right to whole windows, run ``attention`` on each window on its own,
    crop; a map no larger than the window on both sides is a single window."""
    batch, channels, height, width = x.shape
    if height <= window and width <= window:
        return attention(x)
    rows, cols = math.ceil(height / window), math.ceil(width / window)
    padded = x.new_zeros(batch, channels, rows * window, cols * window)
    padded[:, :, :height, :width] = x
    out = torch.zeros_like(padded)
    for r in range(rows):
        for c in range(cols):
            top, left = r * window, c * window
            out[:, :, top:top + window, left:left + window] = attention(
                padded[:, :, top:top + window, left:left + window])
    return out[:, :, :height, :width]


def cascaded_group_attention(module, x, window):
    """EfficientViT: head i sees channel chunk i plus head i-1's output; q passes a
    depthwise conv; each head has its own bias row; concat -> ReLU -> 1x1 conv + BN."""
    batch, channels, height, width = x.shape
    heads = len(module.qkvs)
    chunk = channels // heads
    outputs, previous = [], None
    for i in range(heads):
        feat = x[:, i * chunk:(i + 1) * chunk]
        if previous is not None:
            feat = feat + previous
        qkv = conv_norm(module.qkvs[i], feat)
        q, k, v = qkv[:, :KEY_DIM], qkv[:, KEY_DIM:2 * KEY_DIM], qkv[:, 2 * KEY_DIM:]
        q = conv_norm(module.dws[i], q)
        bias = relative_bias(module.attention_biases[i], height, width, window)
        previous = torch.stack([attend(v[n], attention_matrix(q[n], k[n], bias))
                                for n in range(batch)])
        outputs.append(previous)
    return conv_norm(module.proj[1], torch.relu(torch.cat(outputs, dim=1)))


def reuse_attention(module, x, window):
    """UniForm: ONE attention matrix per window from q, k (C/4 each, q through a 7x7
    depthwise conv, bias row 0); value chunk i passes a depthwise conv of kernel
    1/3/5/7 and is attended with that same matrix; concat -> ReLU -> 1x1 conv + BN."""
    batch, channels, height, width = x.shape
    qk = conv_norm(module.qkvs, x)
    q, k = conv_norm(module.dws, qk[:, :channels // 4]), qk[:, channels // 4:]
    bias = relative_bias(module.attention_biases[0], height, width, window)
    shared = [attention_matrix(q[n], k[n], bias) for n in range(batch)]
    heads = len(module.mix)
    chunk = channels // heads
    outputs = []
    for i in range(heads):
        kernel = REUSE_VALUE_KERNELS[i]
        value = F.conv2d(x[:, i * chunk:(i + 1) * chunk], module.mix[i].weight,
                         module.mix[i].bias, padding=kernel // 2, groups=chunk)
        outputs.append(torch.stack([attend(value[n], shared[n]) for n in range(batch)]))
    return conv_norm(module.proj[1], torch.relu(torch.cat(outputs, dim=1)))
