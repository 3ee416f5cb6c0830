"""Small utilities shared by the tests."""
import torch


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BN/bias/attention-bias parameters non-trivial values.

    Freshly built models start with zero-initialised branch BNs and biases, which
    would hide wiring mistakes; conv weights keep their (bounded) default init.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith('bn.weight') or name.endswith('norm.weight'):
            p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.25)
        elif name.endswith('bias') or name.endswith('attention_biases'):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    for name, b in model.named_buffers():
        if name.endswith('running_var'):
            b.copy_(torch.rand(b.shape, generator=gen) + 1.0)
        elif name.endswith('running_mean'):
            b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
    return model


def read_reference_keys(path):
    """``name<TAB>shape`` lines -> {name: shape tuple}."""
    keys = {}
    with open(path) as f:
        for line in f:
            name, shape = line.rstrip('\n').split('\t')
            keys[name] = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
    return keys
