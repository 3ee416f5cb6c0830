"""Checkpoint sources and the converter CLI (local stand-ins for the real downloads)."""
import functools
import http.server
import os
import threading

import pytest
import torch

from efficientvit_det import checkpoints
from efficientvit_det.checkpoints import fetch
from efficientvit_det.cli import convert_checkpoint
from efficientvit_det.errors import EfficientVitDetError
from efficientvit_det.checkpoints import (CheckpointMismatchError, load_backbone_checkpoint)
from efficientvit_det.models import build_backbone
from tests.support import randomize_


def timm_state(name):
    timm = pytest.importorskip('timm')
    return randomize_(timm.create_model(name)).state_dict()


def test_wrong_variant_names_keys(tmp_path):
    path = tmp_path / 's1.pth'
    torch.save({'state_dict': build_backbone('shvit_s1').state_dict()}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_backbone_checkpoint(build_backbone('shvit_s2'), str(path))
    assert 'shape mismatches' in str(err.value) and "SHViT('s2')" in str(err.value)
    with pytest.raises(CheckpointMismatchError) as err:
        load_backbone_checkpoint(build_backbone('uniform_xs'), str(path))
    assert 'missing keys' in str(err.value) and 'unexpected keys' in str(err.value)
    assert 'missing keys: ' in str(err.value) and 'stages.0.blocks.0.' in str(err.value)


def test_detector_checkpoint_with_backbone_prefix(tmp_path):
    source = randomize_(build_backbone('uniform_xs'))
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['neck.lateral_convs.0.weight'] = torch.zeros(1)
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 12}}, path)
    target = build_backbone('uniform_xs')
    assert load_backbone_checkpoint(target, str(path)) == 'efficientvit_det'
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key])


def test_release_bias_tables_are_resized(tmp_path):
    """Official EfficientViT releases store a 4x4 last-stage window (224 input)."""
    from efficientvit_det.models import EfficientViT
    small = randomize_(EfficientViT('m0', window_size=(7, 7, 4)))
    path = tmp_path / 'release.pth'
    torch.save({'model': small.state_dict()}, path)
    model = EfficientViT('m0')
    load_backbone_checkpoint(model, str(path))
    key = 'stages.2.blocks.0.mixer.m.attn.attention_biases'
    assert model.state_dict()[key].shape == (4, 49)
    # the values are the bicubic resampling of the original table, computed here
    # independently (Keys' cubic kernel, a = -0.75, half-pixel centres, edges clamped)
    original = small.state_dict()[key].view(4, 4, 4).double()
    resized = model.state_dict()[key].view(4, 7, 7).double()
    weights = bicubic_weights(4, 7)
    assert torch.allclose(resized, weights @ original @ weights.T, atol=1e-5)


def bicubic_weights(size_in: int, size_out: int, a: float = -0.75) -> torch.Tensor:
    """(size_out, size_in) matrix of 1-D bicubic interpolation."""
    def kernel(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a if x < 2 else 0.0
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    for i in range(size_out):
        source = (i + 0.5) * size_in / size_out - 0.5
        base = int(torch.floor(torch.tensor(source)))
        for j in range(base - 1, base + 3):
            weights[i, min(max(j, 0), size_in - 1)] += kernel(source - j)
    return weights


def test_url_download_through_local_server(tmp_path, monkeypatch):
    served = tmp_path / 'served'
    served.mkdir()
    torch.save({'model': timm_state('efficientvit_m0')}, served / 'efficientvit_m0.pth')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(fetch, 'CACHE_DIR', str(tmp_path / 'cache'))
    url = f'http://127.0.0.1:{server.server_port}/efficientvit_m0.pth'
    monkeypatch.setitem(checkpoints.RELEASE_URLS, 'efficientvit_m0', url)
    try:
        model = build_backbone('efficientvit_m0')
        assert load_backbone_checkpoint(model, 'release:efficientvit_m0') == 'timm'
        assert (tmp_path / 'cache' / 'efficientvit_m0.pth').exists()
        assert not [p for p in os.listdir(tmp_path / 'cache') if '.partial' in p]
    finally:
        server.shutdown()


def test_hub_checkpoint_from_local_cache(tmp_path, monkeypatch):
    """``hub:`` resolves through huggingface_hub; an offline cache stands in for the hub."""
    from safetensors.torch import save_file
    repo = tmp_path / 'hub' / 'models--timm--shvit_s1.in1k'
    snapshot = repo / 'snapshots' / '0123456789abcdef'
    snapshot.mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text('0123456789abcdef')
    state = {k: v.contiguous() for k, v in timm_state('shvit_s1').items()}
    save_file(state, str(snapshot / 'model.safetensors'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'hub'))
    import huggingface_hub.constants as hub_constants
    monkeypatch.setattr(hub_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hub_constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    model = build_backbone('shvit_s1')
    assert load_backbone_checkpoint(model, 'hub:shvit_s1') == 'timm'
    assert torch.equal(model.state_dict()['patch_embed.conv1.conv.weight'],
                       state['patch_embed.0.c.weight'])


def test_hub_offline_names_the_file_to_fetch_by_hand(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(hub_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hub_constants, 'HF_HUB_CACHE', str(tmp_path / 'empty'))
    with pytest.raises(checkpoints.CheckpointDownloadError) as err:
        checkpoints.fetch_checkpoint('hub:shvit_s1')
    assert 'https://huggingface.co/timm/shvit_s1.in1k/resolve/main/model.safetensors' in \
        str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_unknown_release_lists_known():
    with pytest.raises(KeyError, match='shvit_s4'):
        checkpoints.fetch_checkpoint('release:shvit_s9')


def test_converter_cli_writes_our_layout_and_keeps_existing_files(tmp_path, capsys):
    src = tmp_path / 'official.pth'
    torch.save({'model': timm_state('shvit_s1')}, src)
    dst = tmp_path / 'ours.pth'
    convert_checkpoint.main([str(src), str(dst), '--backbone', 'shvit_s1'])
    converted = torch.load(dst)
    assert converted['meta']['layout'] == 'timm'
    assert 'stages.1.downsample.patchmerge.se.conv1.conv.weight' in converted['state_dict']
    assert 'head.l.weight' not in converted['state_dict']
    model = build_backbone('shvit_s1')
    assert load_backbone_checkpoint(model, str(dst)) == 'efficientvit_det'

    before = dst.read_bytes()
    with pytest.raises(SystemExit):
        convert_checkpoint.main([str(src), str(dst), '--backbone', 'shvit_s1'])
    assert 'exists' in capsys.readouterr().err and dst.read_bytes() == before
    with pytest.raises(CheckpointMismatchError):
        convert_checkpoint.main([str(src), str(tmp_path / 'x.pth'), '--backbone', 'shvit_s2'])
    assert not (tmp_path / 'x.pth').exists()


def test_broken_checkpoint_files_are_named_in_one_line(tmp_path):
    """What a user hands over by mistake: a missing path, a folder, an empty file, a
    zip cut short, a JSON file named .pth, weights that went NaN / inf. Each ends in
    one line of ours (the tools print it, exit 1) naming the file and the fix, and
    convert_checkpoint.py writes nothing."""
    model = build_backbone('shvit_s1')
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': randomize_(build_backbone('shvit_s1')).state_dict()}, good)
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'cut.pth').write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    (tmp_path / 'log.pth').write_text('{"mode": "train", "loss": 1.0}')
    (tmp_path / 'run').mkdir()
    state = randomize_(build_backbone('shvit_s1')).state_dict()
    weights = [key for key in sorted(state) if state[key].is_floating_point()]
    state[weights[0]].view(-1)[0] = float('nan')
    state[weights[-1]].view(-1)[0] = float('inf')
    torch.save({'state_dict': state}, tmp_path / 'diverged.pth')
    cases = {'absent.pth': 'Checkpoint not found', 'run': 'is a folder, not a checkpoint',
             'empty.pth': 'is empty (0 bytes)', 'cut.pth': 'is not a complete checkpoint',
             'log.pth': "is not a PyTorch checkpoint (it starts with '{\"mo'",
             'diverged.pth': 'holds NaN or inf values in 2 ['}
    for name, message in cases.items():
        with pytest.raises(EfficientVitDetError) as refused:
            load_backbone_checkpoint(model, str(tmp_path / name))
        assert message in str(refused.value) and len(str(refused.value).splitlines()) == 1
        with pytest.raises(EfficientVitDetError):
            convert_checkpoint.main([str(tmp_path / name), str(tmp_path / 'out.pth'),
                                     '--backbone', 'shvit_s1'])
        assert not (tmp_path / 'out.pth').exists()
    assert load_backbone_checkpoint(model, str(good)) == 'efficientvit_det'


def test_a_non_finite_loss_stops_training_naming_the_terms():
    """The hook every config lists: a NaN or inf loss term stops the run at that
    iteration (before the checkpoint hook saves it), finite ones pass."""
    from efficientvit_det.errors import NonFiniteLossError
    from efficientvit_det.mmlab.hooks import FiniteLossHook

    class Runner:
        iter = 41
    hook = FiniteLossHook()
    hook.after_train_iter(Runner(), 0, outputs={'loss': torch.tensor(1.5), 'acc': 90.0})
    with pytest.raises(NonFiniteLossError, match=r'iteration 42: the loss went non-finite '
                       r'\(loss=nan, loss_cls=inf\); stopped before saving'):
        hook.after_train_iter(Runner(), 0, outputs={
            'loss': torch.tensor(float('nan')), 'loss_cls': torch.tensor(float('inf')),
            'loss_bbox': torch.tensor(0.3)})
    assert FiniteLossHook.priority == 'ABOVE_NORMAL'  # the checkpoint hook's is lower
