"""Weights that let a numerical check see the model.

A freshly built backbone is an identity network: every residual branch ends in a
BatchNorm whose weight starts at zero, so attention, depthwise convs and FFNs add
nothing until trained, and a check on fresh weights (a mode against eager, ONNX
against PyTorch, ours against a reference) cannot see a wrong attention. Random
weights are not enough by themselves: with small norm scales the attention logits
stay near zero, the softmax is nearly uniform, and attending over the wrong axis
changes SHViT's features by 2e-4 of their range, under the latency tool's 5e-3
tolerance. So every normalisation gets a scale in [0.5, 2] and a shift (BatchNorm
also random running statistics), every other bias and every attention-bias table
a random value of about 0.5: peaked attention, where the same bug moves the
features by 8e-2 to 1.3 of their range (SHViT, EfficientViT, UniForm).
Convolution and linear weights keep their initialisation.
"""
import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@torch.no_grad()
def randomize_for_checking_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``model`` (any torch model) the weights above, in place; seeded."""
    generator = torch.Generator().manual_seed(seed)

    def fill(tensor, low=None, high=None, std=None):
        if std is not None:
            values = torch.randn(tensor.shape, generator=generator) * std
        else:
            values = torch.rand(tensor.shape, generator=generator) * (high - low) + low
        tensor.copy_(values.to(tensor.dtype))

    for module in model.modules():
        if isinstance(module, _NORMS):
            if getattr(module, 'weight', None) is not None:
                fill(module.weight, 0.5, 2.0)
                fill(module.bias, std=0.5)
            if getattr(module, 'running_var', None) is not None:
                fill(module.running_var, 1.0, 2.0)
                fill(module.running_mean, std=0.1)
            continue
        for name, param in module.named_parameters(recurse=False):
            if name == 'bias' or name.endswith('attention_biases'):
                fill(param, std=0.5)
    return model
