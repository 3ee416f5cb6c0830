"""The three backbone families: fidelity to timm / the reference layouts, and behaviour."""
import math
import os

import pytest
import torch
from torch import nn

from efficientvit_det.models import BACKBONE_NAMES, EfficientViT, SHViT, UniForm, build_backbone
from efficientvit_det.models.blocks import Residual, WindowAttention
from efficientvit_det.models.uniform import ReuseAttention
from tests.support import randomize_, read_reference_keys
from tests.support.reference_models import (PLAIN_WINDOW, assert_features_close,
                                            assert_features_match, at_detection_size,
                                            loaded_through_both_layouts, ours_like_timm,
                                            timm_reference, with_plain_attention)

timm = pytest.importorskip('timm')

SHVIT = ['s1', 's2', 's3', 's4']
EFFICIENTVIT = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']
UNIFORM = ['xs', 's', 'm', 'l']
ALL_NAMES = ([f'shvit_{v}' for v in SHVIT] + [f'efficientvit_{v}' for v in EFFICIENTVIT]
             + [f'uniform_{v}' for v in UNIFORM])


@pytest.mark.parametrize('name', [f'shvit_{v}' for v in SHVIT] +
                         [f'efficientvit_{v}' for v in EFFICIENTVIT])
def test_matches_timm_through_both_layouts(name, tmp_path, reference_dir):
    reference = timm_reference(name)
    size = ours_like_timm(name)[1]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
        for ours in loaded_through_both_layouts(reference, lambda: ours_like_timm(name)[0],
                                                name, reference_dir, tmp_path):
            assert_features_close(expected, ours(x))


@pytest.mark.parametrize('name', ['shvit_s1', 'shvit_s4', 'efficientvit_m0', 'efficientvit_m2',
                                  'efficientvit_m4', 'efficientvit_m5'])
def test_matches_timm_at_detection_sizes_through_both_layouts(name, tmp_path, reference_dir):
    reference, build_ours = at_detection_size(name)
    models = loaded_through_both_layouts(reference, build_ours, name, reference_dir, tmp_path,
                                         same_windows=False)
    for size in ((512, 512), (448, 448), (333, 517)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = reference.forward_intermediates(x, intermediates_only=True)
            for ours in models:
                assert_features_match(expected, ours(x))


@pytest.mark.parametrize('name', ['efficientvit_m1', 'efficientvit_m4', 'uniform_xs',
                                  'uniform_l'])
@pytest.mark.parametrize('size', [(333, 517), (320, 384)], ids=['333x517', '320x384'])
def test_window_attention_matches_a_plain_implementation(name, size, monkeypatch):
    """EfficientViT's and UniForm's attention against the plain per-window, per-head
    versions in tests/support/plain_attention.py. At 320x384 the last stage is 5x6, smaller
    than a window: one window with the 5x6 sub-table of the bias (the design; timm
    pads it to 7x7 instead, so timm cannot check this path)."""
    model = randomize_(build_backbone(name, window_size=PLAIN_WINDOW)).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours = model(x)
    assert_features_match(with_plain_attention(model, x, monkeypatch), ours)


@pytest.mark.parametrize('variant', UNIFORM)
def test_uniform_matches_reference_layout(variant, reference_dir):
    expected = read_reference_keys(os.path.join(reference_dir, f'official_uniform_{variant}.txt'))
    actual = {k: tuple(v.shape) for k, v in UniForm(variant).state_dict().items()}
    assert actual == expected


def test_uniform_reuses_one_attention_matrix_for_all_heads():
    attn = randomize_(ReuseAttention(dim=128, num_heads=4, window_size=7)).eval()
    x = torch.randn(2, 128, 7, 7)
    shared = attn.shared_attention(x)
    assert shared.shape == (2, 49, 49)  # one matrix per window, not per head
    # the output is exactly each multi-scale value chunk times that one matrix
    chunks = x.chunk(4, dim=1)
    manual = torch.cat([(mix(c).flatten(2) @ shared.transpose(-2, -1)).view(2, 32, 7, 7)
                        for mix, c in zip(attn.mix, chunks)], dim=1)
    torch.testing.assert_close(attn(x), attn.proj(manual))
    assert [m.kernel_size for m in attn.mix] == [(1, 1), (3, 3), (5, 5), (7, 7)]
    assert all(m.groups == 32 and m.bias is not None for m in attn.mix)
    # only bias row 0 feeds the shared matrix
    with torch.no_grad():
        before = attn(x)
        attn.attention_biases[1:] += 5.0
        torch.testing.assert_close(attn(x), before)
        attn.attention_biases[0] += torch.linspace(0, 5, 49)
        assert not torch.allclose(attn(x), before)


def test_uniform_value_kernels_follow_head_count():
    attn = ReuseAttention(dim=192, num_heads=3, window_size=7)
    assert [m.kernel_size[0] for m in attn.mix] == [1, 3, 5]


@pytest.mark.parametrize('name', ALL_NAMES)
def test_any_input_size_train_and_eval_and_fuse(name):
    torch.manual_seed(0)
    model = randomize_(build_backbone(name))
    x = torch.randn(2, 3, 333, 517)
    expected = [(math.ceil(333 / s), math.ceil(517 / s)) for s in (16, 32, 64)]
    train_out = model.train()(x)
    assert [tuple(o.shape[2:]) for o in train_out] == expected
    assert [o.shape[1] for o in train_out] == model.out_channels
    model.eval()
    with torch.no_grad():
        eager = model(x)
        fused = model.fuse()(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(eager, fused):
        rel = ((a - b).abs().max() / a.abs().max()).item()
        assert rel <= 1e-4, f'{name}: fused differs by {rel:.2e} relative'


@pytest.mark.parametrize('name', ['shvit_s1', 'efficientvit_m0', 'uniform_xs'])
def test_fuse_folds_every_depthwise_residual_into_its_kernel(name):
    """fuse() leaves no BatchNorm and no residual around a depthwise conv: the
    identity goes into the kernel's centre (outputs equal: the test above)."""
    model = build_backbone(name).eval()

    def depthwise_residuals(module):
        return [m for m in module.modules() if isinstance(m, Residual)
                and isinstance(getattr(m.m, 'conv', m.m), nn.Conv2d)
                and getattr(m.m, 'conv', m.m).groups > 1]
    residuals = len([m for m in model.modules() if isinstance(m, Residual)])
    folded = len(depthwise_residuals(model))
    assert folded > 0
    model.fuse()
    assert not depthwise_residuals(model)
    assert len([m for m in model.modules() if isinstance(m, Residual)]) == residuals - folded


def test_window_attention_pads_partitions_and_crops():
    class Tag(nn.Module):  # adds each window's own mean: reveals window membership
        def forward(self, x):
            return x + x.mean(dim=(2, 3), keepdim=True)

    x = torch.randn(1, 2, 9, 16)
    out = WindowAttention(Tag(), 7)(x)
    padded = nn.functional.pad(x, (0, 5, 0, 5))  # 14 x 21 -> 2 x 3 windows
    expected = padded.clone()
    for r in range(2):
        for c in range(3):
            win = padded[:, :, r * 7:(r + 1) * 7, c * 7:(c + 1) * 7]
            expected[:, :, r * 7:(r + 1) * 7, c * 7:(c + 1) * 7] = Tag()(win)
    torch.testing.assert_close(out, expected[:, :, :9, :16])
    small = torch.randn(1, 2, 5, 6)  # fits one window: processed whole, no padding
    torch.testing.assert_close(WindowAttention(Tag(), 7)(small), Tag()(small))


def test_frozen_stages_and_gradients():
    model = randomize_(SHViT('s1', frozen_stages=1)).train()
    frozen = [model.patch_embed, model.stages[0]]
    assert all(not m.training for f in frozen for m in f.modules())
    sum(o.sum() for o in model(torch.randn(2, 3, 96, 128))).backward()
    for name, p in model.named_parameters():
        if name.startswith(('patch_embed.', 'stages.0.')):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f'no gradient reaches {name}'


def test_norm_eval_keeps_statistics():
    model = UniForm('xs', norm_eval=True).train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}
    model(torch.randn(2, 3, 64, 64))
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items() if k in stats)
    assert model.stages[0].training  # only the norms are held in eval mode


def test_gradient_checkpointing_is_exact(monkeypatch):
    import efficientvit_det.models.base as base
    calls = []
    real = base.checkpoint
    monkeypatch.setattr(base, 'checkpoint', lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    plain = randomize_(EfficientViT('m0')).train()
    checkpointed = EfficientViT('m0', with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 112, 112)
    outs = [m(x) for m in (plain, checkpointed)]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for model, out in zip((plain, checkpointed), outs):
        sum(o.sum() for o in out).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    assert len(calls) == sum(len(s.blocks) for s in checkpointed.stages)  # once per block


def test_drop_path_is_stochastic_only_in_training():
    model = randomize_(SHViT('s1', drop_path_rate=0.5))
    x = torch.randn(2, 3, 64, 64)
    model.train()
    torch.manual_seed(0)
    a = model(x)[-1]
    torch.manual_seed(1)
    b = model(x)[-1]
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(model(x)[-1], model(x)[-1])


def test_drop_path_drops_whole_samples_and_keeps_the_expectation():
    """Stochastic depth: each sample's branch is kept whole, scaled by 1/keep, or
    dropped whole; on average the branch is unchanged."""
    torch.manual_seed(0)
    branch = Residual(nn.Identity(), drop_path_prob=0.25).train()
    x = torch.ones(4000, 3, 2, 2)
    added = (branch(x) - x).flatten(1)  # what the branch contributed, per sample
    dropped = (added == 0).all(dim=1)
    kept = torch.isclose(added, torch.tensor(1 / 0.75)).all(dim=1)
    assert bool((dropped | kept).all())  # never part of a sample
    assert 0.72 < kept.float().mean().item() < 0.78
    assert abs(added.mean().item() - 1.0) < 0.05
    assert torch.equal(branch.eval()(x), 2 * x)  # eval: the whole branch, unscaled


def test_out_indices_subset():
    model = SHViT('s1', out_indices=(1,))
    (out,) = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 224, 2, 2) and model.out_channels == [224]


@pytest.mark.parametrize('family', [SHViT, EfficientViT, UniForm])
def test_stem_out_strides_return_the_stems_own_activations(family):
    """The stem taps are the stem's activations at strides 4 and 8 (computed from
    the image), finest first, before the stages' unchanged outputs."""
    smallest = next(iter(family.arch_settings))
    model = randomize_(family(smallest, stem_out_strides=(8, 4, 8))).eval()
    plain = family(smallest).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 128, 96)
    outs = model(x)
    stem = model.patch_embed
    after_conv2 = stem.act2(stem.conv2(stem.act1(stem.conv1(x))))
    assert torch.equal(outs[0], after_conv2)
    assert torch.equal(outs[1], stem.act3(stem.conv3(after_conv2)))
    assert_features_close(plain(x), outs[2:], atol=0)
    assert [o.shape[1] for o in outs] == model.out_channels
    assert [f['reduction'] for f in model.feature_info] == [4, 8, 16, 32, 64]
    assert [128 // o.shape[2] for o in outs] == [4, 8, 16, 32, 64]
    assert [f['module'] for f in model.feature_info][:2] == ['patch_embed.act2',
                                                             'patch_embed.act3']
    with torch.no_grad():
        fused = model.fuse()(x)  # the taps survive folding
    assert len(fused) == 5
    assert all(((a - b).abs().max() / a.abs().max()).item() <= 1e-4 for a, b in zip(outs, fused))


def test_stem_out_strides_outside_the_stem_are_refused():
    with pytest.raises(ValueError, match=r'stem_out_strides must be a subset of \(2, 4, 8\)'):
        SHViT('s1', stem_out_strides=(16,))


@pytest.mark.parametrize('family,variants', [(SHViT, SHVIT), (EfficientViT, EFFICIENTVIT),
                                             (UniForm, UNIFORM)])
def test_unknown_arch_lists_known(family, variants):
    with pytest.raises(KeyError) as err:
        family('x9')
    assert all(repr(v) in str(err.value) for v in variants)


def test_unknown_backbone_name_lists_known():
    with pytest.raises(KeyError) as err:
        build_backbone('shvit_s9')
    assert 'shvit_s4' in str(err.value) and 'uniform_l' in str(err.value)


def test_custom_arch_dict():
    arch = dict(embed_dims=(32, 48, 64), depths=(1, 1, 1), partial_dims=(8, 12, 16),
                attention=(True, True, True))
    outs = SHViT(arch).eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 48, 64]
    with pytest.raises(KeyError, match='partial_dims'):
        SHViT(dict(embed_dims=(32, 48, 64), depths=(1, 1, 1)))
    # a key of another family (or a typo) is named, not ignored
    with pytest.raises(KeyError, match=r"unknown key\(s\) \['num_heads'\]"):
        SHViT(dict(arch, num_heads=(1, 1, 1)))


# Parameter counts reported by the papers (millions, rounded to 0.1);
# SHViT and EfficientViT count the 1000-class BN+Linear head, UniForm does not.
PARAMS_WITH_HEAD = {'shvit_s1': 6.3, 'shvit_s2': 11.4, 'shvit_s3': 14.2, 'shvit_s4': 16.5,
                    'efficientvit_m0': 2.3, 'efficientvit_m1': 3.0, 'efficientvit_m2': 4.2,
                    'efficientvit_m3': 6.9, 'efficientvit_m4': 8.8, 'efficientvit_m5': 12.4}
PARAMS_BACKBONE = {'uniform_xs': 1.8, 'uniform_s': 2.4, 'uniform_m': 6.7, 'uniform_l': 10.0}


@pytest.mark.parametrize('name', ALL_NAMES)
def test_parameter_counts(name):
    # the papers (and timm) count at 224, where EfficientViT's last window is 4x4
    model = ours_like_timm(name)[0] if name in PARAMS_WITH_HEAD else build_backbone(name)
    count = sum(p.numel() for p in model.parameters())
    if name in PARAMS_WITH_HEAD:
        width = model.arch['embed_dims'][-1]
        head = 2 * width + width * 1000 + 1000  # BatchNorm1d + Linear
        assert abs((count + head) / 1e6 - PARAMS_WITH_HEAD[name]) < 0.1
        timm_count = sum(p.numel() for p in timm.create_model(name).parameters())
        assert count + head == timm_count
    else:
        assert abs(count / 1e6 - PARAMS_BACKBONE[name]) < 0.05


def test_registry_of_names_covers_all_variants():
    assert sorted(BACKBONE_NAMES) == sorted(ALL_NAMES)
