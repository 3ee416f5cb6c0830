"""Our backbones next to their references: timm's implementations (the papers' code)
and the plain per-window attention of ``plain_attention.py``, with weights moved
between them through the checkpoint layouts a user brings."""
import os

import pytest
import torch

from efficientvit_det.checkpoints import convert_key, convert_state_dict, load_backbone_checkpoint
from efficientvit_det.models import EfficientViT, SHViT
from efficientvit_det.models.blocks import WindowAttention

from . import randomize_, read_reference_keys
from . import plain_attention


def ours_like_timm(name):
    """Our backbone configured as timm's reference (EfficientViT: 4x4 last window at 224)."""
    if name.startswith('shvit'):
        return SHViT(name.split('_')[1]), 256 if name == 'shvit_s4' else 224
    return EfficientViT(name.split('_')[1], window_size=(7, 7, 4)), 224


def timm_reference(name):
    timm = pytest.importorskip('timm')
    model = timm.create_model(name, pretrained=False).eval()
    return randomize_(model)


def assert_features_close(reference, ours, atol=1e-5):
    assert len(reference) == len(ours)
    for stage, (a, b) in enumerate(zip(reference, ours)):
        assert a.shape == b.shape, f'stage {stage}: {a.shape} vs {b.shape}'
        err = (a - b).abs().max().item()
        assert err <= atol, f'stage {stage}: max abs error {err}'


def official_layout_file(reference, name, reference_dir, path, same_windows=True):
    """``reference``'s weights saved under every key of the official release, mapped by
    the documented rules (bias tables of another window size than the release's
    keep their own shape)."""
    official_keys = read_reference_keys(os.path.join(reference_dir, f'official_{name}.txt'))
    converted, _ = convert_state_dict(reference.state_dict())
    official = {}
    for key, shape in official_keys.items():
        if key.startswith('head.') or key.endswith('attention_bias_idxs'):
            official[key] = torch.zeros(shape)  # dropped on load
            continue
        official[key] = converted[convert_key(key)]
        if same_windows or not key.endswith('attention_biases'):
            assert tuple(official[key].shape) == shape, key
    assert len(official) - sum(k.startswith('head.') or k.endswith('idxs') for k in official) \
        == len(converted)
    torch.save({'model': official}, path)


def loaded_through_both_layouts(reference, build_ours, name, reference_dir, tmp_path,
                                same_windows=True):
    """Ours with ``reference``'s weights, once from a timm file and once from an
    official-layout file, each saved and loaded like a user's."""
    timm_file, official_file = tmp_path / 'timm.pth', tmp_path / 'official.pth'
    torch.save(reference.state_dict(), timm_file)
    official_layout_file(reference, name, reference_dir, official_file, same_windows)
    models = []
    for path, layout in ((timm_file, 'timm'), (official_file, 'official')):
        ours = build_ours()
        assert load_backbone_checkpoint(ours, str(path)) == layout
        models.append(ours.eval())
    return models


def assert_features_match(reference, ours, rtol=1e-5):
    """Stage by stage, error relative to the stage's largest value (non-trivial
    weights make features large)."""
    assert [a.shape for a in reference] == [b.shape for b in ours]
    for stage, (a, b) in enumerate(zip(reference, ours)):
        err = ((a - b).abs().max() / a.abs().max()).item()
        assert err <= rtol, f'stage {stage}: error {err:.2e} of the largest value'


def at_detection_size(name):
    """timm's model and ours as the detectors run them: built for 512x512, EfficientViT
    with 7x7 windows in every stage (timm then pads every map that is not exactly one
    window, so stage maps of 32, 21x33, 16, 11x17, 8, 6x9 go through the padding path)."""
    timm = pytest.importorskip('timm')
    family, variant = name.split('_')
    if family == 'shvit':
        return randomize_(timm.create_model(name).eval()), lambda: SHViT(variant)
    reference = timm.create_model(name, img_size=512, window_size=(7, 7, 7)).eval()
    return randomize_(reference), lambda: EfficientViT(variant, window_size=7)


PLAIN_WINDOW = 7


PLAIN_ATTENTION = {'efficientvit': plain_attention.cascaded_group_attention,
                   'uniform': plain_attention.reuse_attention}


def with_plain_attention(model, x, monkeypatch):
    """``model``'s features with every window attention replaced by the plain version."""
    plain = PLAIN_ATTENTION[type(model).__name__.lower()]

    def forward(self, features):
        return plain_attention.in_windows(
            features, PLAIN_WINDOW, lambda window: plain(self.attn, window, PLAIN_WINDOW))
    with monkeypatch.context() as patch:
        patch.setattr(WindowAttention, 'forward', forward)
        with torch.no_grad():
            return model(x)
