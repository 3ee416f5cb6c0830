"""The numerical checks can see a wrong attention.

A fresh backbone is an identity network (every residual branch ends in a zero-weight
BatchNorm, every attention-bias table is zero), so a check on fresh weights passes
whatever the attention computes. Here the attention is broken on purpose in two
ways -- SHViT's softmax over the wrong axis, EfficientViT's / UniForm's bias table
gathered transposed (|dx|, |dy| for |dy|, |dx|) -- and the latency tool's per-mode
check, the ONNX validation and the reference equivalence (timm at a detection size;
the plain implementation in tests/support/plain_attention.py) must each catch it on the
weights they use; the same checks on fresh weights are shown to miss it.
"""
import contextlib

import pytest
import torch

from efficientvit_det.benchmark.grid import run_grid
from efficientvit_det.deploy.onnx_export import export_onnx
from efficientvit_det.deploy.targets import Target, build_target
from efficientvit_det.models import build_backbone
from efficientvit_det.models.blocks import RelativePositionAttention
from efficientvit_det.models.shvit import SingleHeadAttention
from tests.support import randomize_
from tests.support.reference_models import (assert_features_match, at_detection_size,
                                            loaded_through_both_layouts, with_plain_attention)


@contextlib.contextmanager
def wrong_softmax_axis():
    real = torch.Tensor.softmax

    def softmax(tensor, dim, *args, **kwargs):
        return real(tensor, -2 if dim in (-1, tensor.dim() - 1) else dim, *args, **kwargs)
    torch.Tensor.softmax = softmax
    try:
        yield
    finally:
        torch.Tensor.softmax = real


def _softmax_over_wrong_axis(monkeypatch, only_when_traced):
    forward = SingleHeadAttention.forward

    def broken(self, x):
        if only_when_traced and not torch.jit.is_tracing():
            return forward(self, x)
        with wrong_softmax_axis():
            return forward(self, x)
    monkeypatch.setattr(SingleHeadAttention, 'forward', broken)


def _bias_table_gathered_transposed(monkeypatch, only_when_traced):
    index = RelativePositionAttention._index

    def broken(self, height, width, device):
        offsets = index(self, height, width, device)  # |dy| * window + |dx|
        if only_when_traced and not torch.jit.is_tracing():
            return offsets
        return (offsets % self.window_size) * self.window_size + offsets // self.window_size
    monkeypatch.setattr(RelativePositionAttention, '_index', broken)


BUGS = {'shvit_s1': _softmax_over_wrong_axis, 'efficientvit_m0': _bias_table_gathered_transposed,
        'uniform_xs': _bias_table_gathered_transposed}


def break_attention(monkeypatch, name, only_when_traced: bool):
    """Plant ``name``'s bug; ``only_when_traced``: in traced graphs only (the bug a
    deployment path alone would have)."""
    BUGS[name](monkeypatch, only_when_traced)


def _statuses(target):
    rows = run_grid([target], [(64, 96)], [1], ['eager', 'torchscript'], 'cpu', 1, iters=1,
                    warmup=0)
    return {row['mode']: row['status'] for row in rows}


@pytest.mark.parametrize('name', list(BUGS))
def test_latency_check_catches_a_wrong_traced_attention(name, monkeypatch):
    break_attention(monkeypatch, name, only_when_traced=True)
    assert _statuses(build_target(backbone=name))['torchscript'] == 'mismatch'
    # the same check on a freshly built (identity) backbone sees nothing
    fresh = Target(name, 'backbone', build_backbone(name).eval())
    assert _statuses(fresh)['torchscript'] == 'ok'


@pytest.mark.parametrize('name', list(BUGS))
def test_onnx_validation_catches_a_wrong_traced_attention(name, monkeypatch, tmp_path):
    break_attention(monkeypatch, name, only_when_traced=True)
    example = torch.randn(1, 3, 64, 96)
    for target, caught in ((build_target(backbone=name), True),
                           (Target(name, 'backbone', build_backbone(name).eval()), False)):
        path = str(tmp_path / f'{caught}.onnx')
        export_onnx(target.model, example, path)
        reports = target.validate_export(path, [example])
        assert (not all(r['ok'] for r in reports)) is caught


@pytest.mark.parametrize('name', ['shvit_s1', 'efficientvit_m0'])
def test_timm_equivalence_catches_a_wrong_attention(name, monkeypatch, tmp_path, reference_dir):
    reference, build_ours = at_detection_size(name)
    ours = loaded_through_both_layouts(reference, build_ours, name, reference_dir, tmp_path,
                                       same_windows=False)[0]
    x = torch.randn(1, 3, 333, 517)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
        assert_features_match(expected, ours(x))  # intact: equal
        break_attention(monkeypatch, name, only_when_traced=False)
        with pytest.raises(AssertionError, match='of the largest value'):
            assert_features_match(expected, ours(x))


@pytest.mark.parametrize('name', ['efficientvit_m0', 'uniform_xs'])
def test_plain_implementation_catches_a_transposed_bias_table(name, monkeypatch):
    x = torch.randn(1, 3, 320, 384)  # windows of 7x7 and a 5x6 one
    model = randomize_(build_backbone(name, window_size=7)).eval()
    with monkeypatch.context() as patch:
        break_attention(patch, name, only_when_traced=False)
        with torch.no_grad():
            broken = model(x)
    with pytest.raises(AssertionError, match='of the largest value'):
        assert_features_match(with_plain_attention(model, x, monkeypatch), broken)
    fresh = build_backbone(name, window_size=7).eval()  # zero bias tables: blind
    with monkeypatch.context() as patch:
        break_attention(patch, name, only_when_traced=False)
        with torch.no_grad():
            broken = fresh(x)
    assert_features_match(with_plain_attention(fresh, x, monkeypatch), broken)
