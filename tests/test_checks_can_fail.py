"""The numerical checks can see a wrong attention.

A fresh backbone is an identity network (every residual branch ends in a zero-weight
BatchNorm), so a check on fresh weights passes whatever the attention computes. Here
SHViT's attention is broken on purpose (softmax over the wrong axis), and the
latency tool's per-mode check, the ONNX validation and the reference equivalence
must each catch it on the weights they use; the same check on fresh weights is
shown to miss it.
"""
import contextlib

import pytest
import torch

from efficientvit_det.checkpoints import load_backbone_checkpoint
from efficientvit_det.latency.engine import build_target, run_grid
from efficientvit_det.latency.onnx_export import export_onnx, validate
from efficientvit_det.models import build_backbone
from efficientvit_det.models.shvit import SingleHeadAttention
from test_backbones import assert_features_close, ours_like_timm, timm_reference


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


def break_attention(monkeypatch, only_when_traced: bool):
    """SHViT's attention normalises over keys' wrong axis (only in traced graphs:
    the bug a deployment path alone would have)."""
    forward = SingleHeadAttention.forward

    def broken(self, x):
        if only_when_traced and not torch.jit.is_tracing():
            return forward(self, x)
        with wrong_softmax_axis():
            return forward(self, x)
    monkeypatch.setattr(SingleHeadAttention, 'forward', broken)


def _statuses(target):
    rows = run_grid([target], [(64, 96)], [1], ['eager', 'torchscript'], 'cpu', 1, iters=1,
                    warmup=0)
    return {row['mode']: row['status'] for row in rows}


def test_latency_check_catches_a_wrong_traced_attention(monkeypatch):
    break_attention(monkeypatch, only_when_traced=True)
    assert _statuses(build_target(backbone='shvit_s1'))['torchscript'] == 'mismatch'
    # the same check on a freshly built (identity) backbone sees nothing
    fresh = ('shvit_s1', 'backbone', build_backbone('shvit_s1').eval())
    assert _statuses(fresh)['torchscript'] == 'ok'


def test_onnx_validation_catches_a_wrong_traced_attention(monkeypatch, tmp_path):
    break_attention(monkeypatch, only_when_traced=True)
    example = torch.randn(1, 3, 64, 96)
    for model, caught in ((build_target(backbone='shvit_s1')[2], True),
                          (build_backbone('shvit_s1').eval(), False)):
        path = str(tmp_path / f'{caught}.onnx')
        export_onnx(model, example, path)
        reports = validate(model, path, example, dynamic=False)
        assert (not all(r['ok'] for r in reports)) is caught


@pytest.mark.parametrize('name', ['shvit_s1'])
def test_reference_equivalence_catches_a_wrong_attention(name, monkeypatch, tmp_path):
    reference = timm_reference(name)  # random weights, as the equivalence tests use
    ours, size = ours_like_timm(name)
    torch.save(reference.state_dict(), tmp_path / 'timm.pth')
    load_backbone_checkpoint(ours, str(tmp_path / 'timm.pth'))
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
        assert_features_close(expected, ours.eval()(x))  # intact: equal
        break_attention(monkeypatch, only_when_traced=False)
        with pytest.raises(AssertionError, match='max abs error'):
            assert_features_close(expected, ours(x))
