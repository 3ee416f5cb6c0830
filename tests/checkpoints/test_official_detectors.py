"""The papers' COCO detectors on our stack: their checkpoints load strictly into our
configs, their neck computes what ours does, and our recipes are theirs."""
import argparse
import functools
import http.server
import math
import os
import subprocess
import threading

import pytest
import torch
import torch.nn.functional as F

from efficientvit_det import checkpoints
from efficientvit_det.checkpoints import fetch
from efficientvit_det.cli import convert_checkpoint, train
from efficientvit_det.cli import test as test_tool
from efficientvit_det.mmlab import runner as runner_module
from efficientvit_det.checkpoints import (CheckpointDownloadError, CheckpointMismatchError,
                                          UnsafeCheckpointError, convert_detector_state_dict,
                                          convert_key, load_checkpoint_file,
                                          load_model_checkpoint)
from efficientvit_det.models.neck import TransposedFPN
from efficientvit_det.mmlab.scope import build_model_from_config
from efficientvit_det.mmlab.toy_data import make_coco_toy
from mmengine.config import Config
from tests.support import ROOT, read_reference_keys


#: the four public detectors: reference key file -> the config that reproduces it
OFFICIAL_DETECTORS = {
    'official_mask_rcnn_shvit_s4_1x_coco.txt': 'mask_rcnn_shvit_s4.py',
    'official_retinanet_shvit_s4_1x_coco.txt': 'retinanet_shvit_s4.py',
    'official_mask_rcnn_efficientvit_m4_1x_coco.txt': 'mask_rcnn_efficientvit_m4.py',
    'official_retinanet_efficientvit_m4_1x_coco.txt': 'retinanet_efficientvit_m4.py',
}


def random_tensors(shapes, seed=0):
    """A state dict with the given shapes and distinct random values (valid BN variances)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith('num_batches_tracked'):
            state[name] = torch.tensor(100, dtype=torch.long)
        elif name.endswith('attention_bias_idxs'):
            state[name] = torch.randint(0, shape[-1], shape, generator=gen)
        elif name.endswith('running_var'):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.1
    return state


def official_state(reference_dir, key_file, seed=0):
    return random_tensors(read_reference_keys(os.path.join(reference_dir, key_file)), seed)


def build(config):
    return build_model_from_config(os.path.join(ROOT, 'configs', config))


# ----------------------------------------------------------------------------- the four layouts

@pytest.mark.parametrize('key_file,config', OFFICIAL_DETECTORS.items())
def test_official_detector_loads_strictly(reference_dir, tmp_path, key_file, config):
    state = official_state(reference_dir, key_file)
    path = tmp_path / 'official.pth'
    torch.save({'state_dict': state, 'meta': {'mmdet_version': '2.25.0', 'epoch': 12}}, path)
    model = build(config)
    assert load_model_checkpoint(model, str(path)) == 'official'

    # every official tensor landed somewhere in the model (values are distinct) ...
    loaded = {(tuple(v.shape), round(float(v.double().sum()), 6))
              for v in model.state_dict().values()}
    for key, value in state.items():
        if not key.endswith('attention_bias_idxs'):
            assert (tuple(value.shape), round(float(value.double().sum()), 6)) in loaded, key
    # ... where the official forward uses it: the backbone through the release layout,
    # the neck by role (FINEST transposed level first), the heads unchanged
    model_state = model.state_dict()
    expected = {
        'backbone.patch_embed.conv1.conv.weight': 'backbone.patch_embed.0.c.weight',
        'neck.lateral_convs.2.weight': 'neck.lateral_convs.2.conv.weight',
        'neck.trans_convs.0.weight': 'neck.extra_trans_convs.0.conv.weight',
        'neck.fpn_convs.0.weight': 'neck.extra_fpn_convs.0.conv.weight',
    }
    ffn = 'ffn1' if 'efficientvit' in config else 'ffn'  # a family's block layout
    expected.update({
        f'backbone.stages.0.blocks.0.{ffn}.m.pw1.conv.weight':
            f'backbone.blocks1.0.{ffn}.m.pw1.c.weight',
        'backbone.stages.1.downsample.res1.0.m.conv.weight': 'backbone.blocks2.0.0.m.c.weight',
        'backbone.stages.1.downsample.patchmerge.se.conv1.conv.weight':
            'backbone.blocks2.1.se.fc1.weight',
        'backbone.stages.2.downsample.res2.1.m.pw2.bn.weight':
            'backbone.blocks3.2.1.m.pw2.bn.weight',
        f'backbone.stages.2.blocks.1.{ffn}.m.pw2.bn.weight':
            f'backbone.blocks3.4.{ffn}.m.pw2.bn.weight',
    })
    transposed = 2 if 'mask_rcnn' in config else 1
    expected[f'neck.fpn_convs.{transposed}.bias'] = 'neck.fpn_convs.0.conv.bias'
    if 'mask_rcnn' in config:
        expected['neck.fpn_convs.1.weight'] = 'neck.extra_fpn_convs.1.conv.weight'
        expected['roi_head.mask_head.conv_logits.weight'] = 'roi_head.mask_head.conv_logits.weight'
    else:
        expected['neck.extra_convs.0.weight'] = 'neck.fpn_convs.3.conv.weight'
        expected['bbox_head.retina_cls.weight'] = 'bbox_head.retina_cls.weight'
    for ours, theirs in expected.items():
        assert torch.equal(model_state[ours], state[theirs]), (ours, theirs)


@pytest.mark.parametrize('key_file,config', OFFICIAL_DETECTORS.items())
def test_official_detector_that_does_not_fit_names_the_key(reference_dir, tmp_path, key_file,
                                                           config):
    state = official_state(reference_dir, key_file)
    model = build(config)
    cases = {
        'missing': ({k: v for k, v in state.items() if k != 'neck.lateral_convs.1.conv.bias'},
                    'missing keys: 1 [neck.lateral_convs.1.bias]'),
        'unexpected': (dict(state, **{'neck.extra_fpn_convs.7.conv.weight': torch.zeros(1)}),
                       'unexpected keys: 1 [neck.fpn_convs.7.weight]'),
        'mis-shaped': (dict(state, **{'neck.extra_trans_convs.0.conv.bias': torch.zeros(255)}),
                       'neck.trans_convs.0.bias (255,) vs model (256,)'),
    }
    for name, (broken, message) in cases.items():
        path = tmp_path / f'{name}.pth'
        torch.save({'state_dict': broken}, path)
        with pytest.raises(CheckpointMismatchError) as err:
            load_model_checkpoint(model, str(path))
        assert message in str(err.value), name
        assert 'official layout' in str(err.value)


def test_classification_layout_windows_are_refused_in_a_detector(reference_dir, tmp_path):
    """The papers' EfficientViT detectors have 7x7 windows in every stage. A detector
    file with 4x4 last-stage tables has the ImageNet classification code's layout, not
    a released detector's: it is refused with that hint, never resized (a trained
    detector's numbers hold only with its own windows)."""
    state = official_state(reference_dir, 'official_retinanet_efficientvit_m4_1x_coco.txt')
    for key in [k for k in state if k.startswith('backbone.blocks3.') and
                k.endswith('attention_biases')]:
        state[key] = torch.randn(4, 16)
    path = tmp_path / 'classification_windows.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_checkpoint(build('retinanet_efficientvit_m4.py'), str(path))
    message = str(err.value)
    assert 'stages.2.blocks.0.mixer.m.attn.attention_biases (4, 16) vs model (4, 49)' in message
    assert '4x4 where the model has 7x7' in message
    assert 'ImageNet classification layout' in message and '7x7 windows in every stage' in message


def non_trivial(state, seed=0):
    """``state`` with every norm scale in [0.5, 1.5] and attention-bias tables of std 1:
    residual branches and attention that the compared outputs can see."""
    gen = torch.Generator().manual_seed(seed)
    state = dict(state)
    for key, value in state.items():
        if key.endswith('bn.weight'):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith('attention_biases'):
            state[key] = torch.randn(value.shape, generator=gen)
    return state


def official_to_timm_key(key):
    """A key of the official EfficientViT release in timm's layout, from the official
    structure: ``patch_embed.{0,2,4,6}`` are the stem's four Conv+BN; ``blocksN``
    holds stage N's blocks, after (N > 1) the downsampling's three entries
    (residual pair, PatchMerging, residual pair), which timm names ``res1``,
    ``patchmerge``, ``res2``; a Conv+BN's conv is ``c`` there, ``conv`` in timm."""
    parts = key.split('.')
    if parts[0] == 'patch_embed':
        parts[1] = f'conv{int(parts[1]) // 2 + 1}'
    elif parts[0].startswith('blocks'):
        stage, index = int(parts[0][len('blocks'):]) - 1, int(parts[1])
        if stage == 0 or index >= 3:
            where = ['blocks', str(index - (3 if stage else 0))]
        else:
            where = ['downsample', ('res1', 'patchmerge', 'res2')[index]]
        parts[:2] = ['stages', str(stage)] + where
    return '.'.join('conv' if p == 'c' else p for p in parts)


@pytest.mark.parametrize('key_file,config,neck_args', [
    ('official_mask_rcnn_efficientvit_m4_1x_coco.txt', 'mask_rcnn_efficientvit_m4.py',
     dict(extra_on_input=False)),
    ('official_retinanet_efficientvit_m4_1x_coco.txt', 'retinanet_efficientvit_m4.py',
     dict(extra_on_input=True)),
])
def test_efficientvit_detector_gives_the_official_pyramid(reference_dir, tmp_path, key_file,
                                                          config, neck_args):
    """A released EfficientViT-M4 detector's layout loads strictly into our config, and
    our backbone + neck compute its pyramid as an independent implementation of the
    official forward does: timm's EfficientViT-M4 with 7x7 windows in every stage (the
    official downstream backbone's ``window_size=[7, 7, 7]``, no cap), given the file's
    backbone through timm's own converter of the official layout, then the official
    neck forward written above. Stage maps of 32/16/8 and 28x40/14x20/7x10 go through
    the window padding."""
    timm = pytest.importorskip('timm')
    state = non_trivial(official_state(reference_dir, key_file, seed=3))
    path = tmp_path / 'official.pth'
    torch.save({'state_dict': state}, path)
    model = build(config)
    assert load_model_checkpoint(model, str(path)) == 'official'
    reference = timm.create_model('efficientvit_m4', img_size=512, window_size=(7, 7, 7))
    released = {official_to_timm_key(k[len('backbone.'):]): v for k, v in state.items()
                if k.startswith('backbone.') and not k.endswith('attention_bias_idxs')}
    reference.load_state_dict(released, strict=False)
    assert {k for k in reference.state_dict() if not k.startswith('head.')} == set(released)
    neck = {k[len('neck.'):]: v for k, v in state.items() if k.startswith('neck.')}
    model.eval(), reference.eval()
    for size in ((512, 512), (448, 640)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ours = model.extract_feat(x)
            features = reference.forward_intermediates(x, intermediates_only=True)
            theirs = official_neck_forward(neck, features, neck_args['extra_on_input'])
        assert len(ours) == len(theirs) == 5
        for level, (a, b) in enumerate(zip(ours, theirs)):
            assert a.shape == b.shape, (size, level)
            assert (a - b).abs().max() <= 1e-4 * b.abs().max(), (size, level)


def test_imagenet_release_tables_are_resized_as_the_official_detection_code_does(
        reference_dir, tmp_path, monkeypatch):
    """Our EfficientViT detection configs start from the ImageNet release (4x4 last-stage
    tables): its tables are resized to the detectors' 7x7 windows on load, as the
    official ``init_weights`` does (written here from its description: a table whose
    length differs, viewed as (1, heads, 4, 4), bicubic ``F.interpolate`` to 7x7, viewed
    back), the other stages' tables untouched, and the log names what was resized."""
    release = non_trivial(official_state(reference_dir, 'official_efficientvit_m4.txt'))
    path = tmp_path / 'efficientvit_m4.pth'
    torch.save({'model': release}, path)
    model = build('mask_rcnn_efficientvit_m4.py')  # built without its init_cfg's weights
    logged = []
    monkeypatch.setattr('efficientvit_det.checkpoints.fit.log_message',
                        lambda message, level=None: logged.append(message))
    model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    model.backbone.init_weights()
    loaded = model.backbone.state_dict()
    resized_keys = []
    for key, table in release.items():
        if not key.endswith('attention_biases'):
            continue
        ours = loaded[convert_key(key)]
        heads, length = table.shape
        if length == ours.shape[1]:
            assert torch.equal(ours, table), key
            continue
        side, new_side = int(length ** 0.5), int(ours.shape[1] ** 0.5)
        expected = F.interpolate(table.view(1, heads, side, side), size=(new_side, new_side),
                                 mode='bicubic').view(heads, new_side * new_side)
        assert torch.allclose(ours, expected, atol=1e-6), key
        resized_keys.append(convert_key(key))
    assert len(resized_keys) == 3  # the last stage's three blocks
    message = next(m for m in logged if 'resized' in m)
    assert all(f'{key} 4x4 -> 7x7' in message for key in resized_keys)


def test_backbone_only_file_is_named_as_such(tmp_path):
    model = build('retinanet_shvit_s1.py')
    path = tmp_path / 'backbone.pth'
    torch.save({'state_dict': model.backbone.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match='backbone-only checkpoint'):
        load_model_checkpoint(model, str(path))


@pytest.mark.parametrize('config', ['retinanet_shvit_s1.py', 'mask_rcnn_efficientvit_m0.py',
                                    'mask_rcnn_fastvit_sa12.py',
                                    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'])
def test_other_layouts_are_left_alone(config):
    """Ours, timm backbones' and mmdet's own detectors need no conversion: nothing
    is renamed (mmdet's stock FPN shares the official neck's ConvModule names)."""
    if config.startswith('mmdet::'):  # mmdet ships its configs inside the package
        import mmdet
        config = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs',
                              config[len('mmdet::'):])
    cfg = Config.fromfile(config if os.path.isabs(config)
                          else os.path.join(ROOT, 'configs', config))
    cfg.model.backbone.pop('init_cfg', None)
    state = build_model_from_config(cfg).state_dict()
    converted, layout = convert_detector_state_dict(state)
    assert layout == 'efficientvit_det' and list(converted) == list(state)
    wrapped = checkpoints.convert_detector_checkpoint(
        {'state_dict': {f'module.{k}': v for k, v in state.items()}})
    assert list(wrapped['state_dict']) == [f'module.{k}' for k in state]


# ----------------------------------------------------------------------------- the neck

def official_neck_forward(weights, inputs, extra_on_input):
    """The papers' EfficientViTFPN forward, from its description, on its key names."""
    def conv(name, x, **kwargs):
        return F.conv2d(x, weights[f'{name}.conv.weight'], weights[f'{name}.conv.bias'],
                        **kwargs)

    laterals = [conv(f'lateral_convs.{i}', x) for i, x in enumerate(inputs)]
    for i in range(len(laterals) - 1, 0, -1):
        laterals[i - 1] = laterals[i - 1] + F.interpolate(
            laterals[i], size=laterals[i - 1].shape[2:], mode='nearest')
    extra_laterals, prev = [], laterals[0]
    num_trans = len({k.split('.')[1] for k in weights if k.startswith('extra_trans_convs.')})
    for i in range(num_trans):
        prev = F.conv_transpose2d(prev, weights[f'extra_trans_convs.{i}.conv.weight'],
                                  weights[f'extra_trans_convs.{i}.conv.bias'], stride=2)
        extra_laterals.insert(0, prev)
    outs = [conv(f'fpn_convs.{i}', laterals[i], padding=1) for i in range(len(laterals))]
    if extra_on_input:
        outs.append(conv(f'fpn_convs.{len(laterals)}', inputs[-1], stride=2, padding=1))
    extra_outs = [conv(f'extra_fpn_convs.{i}', x, padding=1)
                  for i, x in enumerate(extra_laterals)]
    return extra_outs + outs


@pytest.mark.parametrize('key_file,neck_args', [
    ('official_mask_rcnn_shvit_s4_1x_coco.txt', dict(num_extra_trans_convs=2)),
    ('official_retinanet_efficientvit_m4_1x_coco.txt',
     dict(num_extra_trans_convs=1, add_extra_convs='on_input')),
])
def test_neck_equals_the_official_forward(reference_dir, key_file, neck_args):
    state = official_state(reference_dir, key_file, seed=1)
    official = {k[len('neck.'):]: v for k, v in state.items() if k.startswith('neck.')}
    in_channels = [official[f'lateral_convs.{i}.conv.weight'].shape[1] for i in range(3)]
    neck = TransposedFPN(in_channels, 256, num_outs=5, **neck_args).eval()
    converted, _ = convert_detector_state_dict(state)
    neck.load_state_dict({k[len('neck.'):]: v for k, v in converted.items()
                          if k.startswith('neck.')}, strict=True)
    # stride-16 map 19x27: stride-32 10x14, stride-64 5x7 (ceil-divided, not powers of two)
    inputs = [torch.randn(2, c, math.ceil(19 / 2 ** i), math.ceil(27 / 2 ** i))
              for i, c in enumerate(in_channels)]
    with torch.no_grad():
        ours = neck(inputs)
        theirs = official_neck_forward(official, inputs,
                                       neck_args.get('add_extra_convs') == 'on_input')
    assert len(ours) == len(theirs) == 5
    for level, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, level
        assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max()), level


# ----------------------------------------------------------------------------- tools

def to_official_layout(model, reference_dir, backbone_key_file):
    """Our detector's state in the papers' mmdet 2.x layout (a stand-in release file).

    Backbone names come from the release's own key list; the neck is renamed by
    role, as the official EfficientViTFPN names its convs."""
    ours_to_release = {convert_key(k): k for k in read_reference_keys(
        os.path.join(reference_dir, backbone_key_file)) if not k.startswith('head.')}
    neck = model.neck
    num_trans, num_levels = neck.num_extra_trans_convs, len(neck.lateral_convs)
    names = {f'lateral_convs.{i}': f'lateral_convs.{i}' for i in range(num_levels)}
    names.update({f'trans_convs.{i}': f'extra_trans_convs.{i}' for i in range(num_trans)})
    names.update({f'fpn_convs.{i}': f'extra_fpn_convs.{i}' for i in range(num_trans)})
    names.update({f'fpn_convs.{num_trans + i}': f'fpn_convs.{i}' for i in range(num_levels)})
    names.update({f'extra_convs.{i}': f'fpn_convs.{num_levels + i}'
                  for i in range(len(neck.extra_convs))})
    official = {}
    for key, value in model.state_dict().items():
        part, rest = key.split('.', 1)
        if part == 'backbone':
            key = 'backbone.' + ours_to_release[rest]
        elif part == 'neck':
            module, param = rest.rsplit('.', 1)
            key = f'neck.{names[module]}.conv.{param}'
        official[key] = value
    return official


def test_stand_in_release_has_the_official_key_set(reference_dir):
    """The helper above, checked against a real release's key list."""
    reference = read_reference_keys(
        os.path.join(reference_dir, 'official_mask_rcnn_shvit_s4_1x_coco.txt'))
    produced = to_official_layout(build('mask_rcnn_shvit_s4.py'), reference_dir,
                                  'official_shvit_s4.txt')
    assert set(produced) == {k for k in reference if not k.endswith('attention_bias_idxs')}
    assert all(tuple(produced[k].shape) == reference[k] for k in produced)


@pytest.mark.slow
def test_test_tool_evaluates_an_official_layout_checkpoint(reference_dir, tmp_path, capsys):
    root = tmp_path / 'toy'
    make_coco_toy(str(root), num_train=2, num_val=3, seed=5)
    config = os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py')
    model = build_model_from_config(config)
    torch.manual_seed(0)
    for p in model.parameters():  # a non-trivial model, so the metrics come from it
        p.data.normal_(0, 0.05)
    release = tmp_path / 'release.pth'
    # the way training scripts save: weights plus objects of their own
    torch.save({'state_dict': to_official_layout(model, reference_dir, 'official_shvit_s1.txt'),
                'meta': {'CLASSES': ('circle', 'rectangle', 'triangle')},
                'args': argparse.Namespace(lr=1e-4, epochs=12)}, release)
    options = [f'{split}_dataloader.{key}' for split in ('val', 'test')
               for key in (f'dataset.data_root={root}/', 'num_workers=0',
                           'persistent_workers=False')]
    options += [f'{split}_evaluator.ann_file={root}/annotations/instances_val.json'
                for split in ('val', 'test')]
    loaded_into = []

    def spy(target, spec):  # the model the tool evaluates, as the weights go in
        loaded_into.append(target)
        return load_model_checkpoint(target, spec)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, 'load_model_checkpoint', spy)
        metrics = test_tool.test_main([config, str(release), '--work-dir', str(tmp_path / 'work'),
                                       '--cfg-options', *options])
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)
    evaluated = loaded_into[0].state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(evaluated[key], value), key
    printed = capsys.readouterr().out
    assert 'coco/bbox_mAP' in printed and 'metric' in printed

    # a checkpoint of another variant stops the tool before any evaluation, naming keys
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': build('mask_rcnn_shvit_s2.py').state_dict()}, other)
    with pytest.raises(CheckpointMismatchError, match='shape mismatches'):
        test_tool.test_main([config, str(other), '--work-dir', str(tmp_path / 'work2'),
                             '--cfg-options', *options])


def test_converter_cli_writes_a_detector_checkpoint_load_from_takes(reference_dir, tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint
    src = tmp_path / 'official.pth'
    state = official_state(reference_dir, 'official_retinanet_shvit_s4_1x_coco.txt')
    torch.save({'state_dict': state}, src)
    dst = tmp_path / 'ours.pth'
    convert_checkpoint.main([str(src), str(dst), '--config',
                             os.path.join(ROOT, 'configs', 'retinanet_shvit_s4.py')])
    converted = torch.load(dst)
    assert converted['meta']['layout'] == 'official'
    assert 'neck.extra_convs.0.weight' in converted['state_dict']
    model = build('retinanet_shvit_s4.py')
    load_checkpoint(model, str(dst), strict=True)  # mmengine's load_from path
    assert torch.equal(model.neck.extra_convs[0].weight, state['neck.fpn_convs.3.conv.weight'])
    # mmengine's path through our safe: scheme converts the official file itself, too;
    # its own loader for plain paths is left as it is (the file does not fit then)
    other = build('retinanet_shvit_s4.py')
    load_checkpoint(other, f'safe:{src}', strict=True)
    assert torch.equal(other.neck.fpn_convs[0].bias, state['neck.extra_fpn_convs.0.conv.bias'])
    with pytest.raises(RuntimeError, match='unexpected key'):
        load_checkpoint(build('retinanet_shvit_s4.py'), str(src), strict=True)


def test_detector_release_download_through_local_server(reference_dir, tmp_path, monkeypatch):
    served = tmp_path / 'served'
    served.mkdir()
    name = 'retinanet_efficientvit_m4_fpn_1x_coco'
    torch.save({'state_dict': official_state(
        reference_dir, 'official_retinanet_efficientvit_m4_1x_coco.txt')}, served / f'{name}.pth')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(fetch, 'CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setitem(checkpoints.RELEASE_URLS, name,
                        f'http://127.0.0.1:{server.server_port}/{name}.pth')
    try:
        model = build('retinanet_efficientvit_m4.py')
        assert load_model_checkpoint(model, f'release:{name}') == 'official'
        assert (tmp_path / 'cache' / f'{name}.pth').exists()
    finally:
        server.shutdown()
        server.server_close()
    # no server: one line with the URL and where to put the file by hand, nothing left
    monkeypatch.setitem(checkpoints.RELEASE_URLS, 'retinanet_shvit_s4_1x_coco',
                        f'http://127.0.0.1:{server.server_port}/gone.pth')
    with pytest.raises(CheckpointDownloadError) as err:
        checkpoints.fetch_checkpoint('release:retinanet_shvit_s4_1x_coco')
    assert 'gone.pth' in str(err.value) and str(tmp_path / 'cache' / 'gone.pth') in str(err.value)
    assert sorted(os.listdir(tmp_path / 'cache')) == [f'{name}.pth']


@pytest.mark.slow
def test_model_name_loads_the_released_detector_through_the_safe_loader(reference_dir, tmp_path,
                                                                        monkeypatch):
    """``tools/infer.py IMAGE retinanet_efficientvit_m4``: the name's release goes
    through ``release:`` (cache, allow-list, the papers' layout converted), so the
    official file loads strictly into the inferencer and predicts."""
    import numpy as np
    from efficientvit_det.mmlab.inference import build_inferencer, resolve_model
    name = 'retinanet_efficientvit_m4_fpn_1x_coco'
    assert resolve_model('retinanet_efficientvit_m4', None)[1] == f'release:{name}'
    cache = tmp_path / 'cache'
    cache.mkdir()
    torch.save({'state_dict': official_state(
        reference_dir, 'official_retinanet_efficientvit_m4_1x_coco.txt')}, cache / f'{name}.pth')
    monkeypatch.setattr(fetch, 'CACHE_DIR', str(cache))  # the download, done by hand
    inferencer = build_inferencer('retinanet_efficientvit_m4')
    official = official_state(reference_dir, 'official_retinanet_efficientvit_m4_1x_coco.txt')
    loaded = inferencer.model.state_dict()
    assert torch.equal(loaded['bbox_head.retina_cls.weight'],
                       official['bbox_head.retina_cls.weight'])
    result = inferencer(np.zeros((96, 128, 3), np.uint8))
    assert len(result['predictions']) == 1


def test_release_names_are_the_published_files():
    urls = checkpoints.RELEASE_URLS
    assert urls['maskrcnn_shvit_s4_1x_coco'] == \
        'https://github.com/ysj9909/SHViT/releases/download/v1.0/maskrcnn_shvit_s4_1x_coco.pth'
    assert urls['retinanet_shvit_s4_1x_coco'] == \
        'https://github.com/ysj9909/SHViT/releases/download/v1.0/retinanet_shvit_s4_1x_coco.pth'
    zoo = 'https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/releases/download/v1.0/'
    assert urls['mask_rcnn_efficientvit_m4_fpn_1x_coco'] == \
        zoo + 'mask_rcnn_efficientvit_m4_fpn_1x_coco.pth'
    assert urls['retinanet_efficientvit_m4_fpn_1x_coco'] == \
        zoo + 'retinanet_efficientvit_m4_fpn_1x_coco.pth'
    assert urls['efficientvit_m4'] == zoo + 'efficientvit_m4.pth'


# ----------------------------------------------------------------------------- what files carry

class TrainingState:
    """A class of some training script: its code must never run while loading."""

    def __init__(self, step):
        self.step = step

    def __setstate__(self, state):
        raise AssertionError('the class of a pickled object ran while loading')


class Payload:
    """Unpickling this calls ``target(argument)``: how code-running pickles work."""

    def __init__(self, target, argument):
        self.target, self.argument = target, argument

    def __reduce__(self):
        return self.target, (self.argument,)


def test_files_with_extra_objects_give_their_weights(tmp_path):
    weights = {'w': torch.randn(3)}
    path = tmp_path / 'extras.pth'
    torch.save({'model': weights, 'args': argparse.Namespace(lr=0.1, model='shvit_s4'),
                'meta': {'trainer': TrainingState(7)}}, path)
    loaded = load_checkpoint_file(str(path))
    assert torch.equal(loaded['model']['w'], weights['w'])
    assert loaded['args'].pickled_name == 'argparse.Namespace'
    assert loaded['args'].pickled_state == {'lr': 0.1, 'model': 'shvit_s4'}
    assert type(loaded['meta']['trainer']).__name__ == 'TrainingState'
    assert loaded['meta']['trainer'].pickled_state == {'step': 7}  # its own code never ran


@pytest.mark.parametrize('target', [exec, subprocess.call, os.system],
                         ids=['builtins.exec', 'subprocess.call', 'os.system'])
def test_code_running_payload_is_refused(tmp_path, target):
    """exec and subprocess.call reach the placeholder's refusal to be called; os.system
    (module posix) is refused by torch's own block list."""
    marker = tmp_path / 'ran'
    argument = f'open({str(marker)!r}, "w").close()' if target is exec else f'touch {marker}'
    if target is subprocess.call:
        argument = ['touch', str(marker)]
    path = tmp_path / 'payload.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': Payload(target, argument)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_file(str(path))
    assert not marker.exists()
    message = str(err.value)
    assert 'Refusing to load' in message and 'Nothing was executed' in message
    # protocol-2 pickles name subprocess.call by its Python 2 module, commands.call
    assert {exec: 'call builtins.exec(', subprocess.call: 'call commands.call(',
            os.system: 'system'}[target] in message
    assert len(message.splitlines()) == 1


# ----------------------------------------------------------------------------- the recipes

#: The papers' COCO recipe (SHViT and EfficientViT share their mmdet 2.x configs).
OFFICIAL_RECIPE = dict(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05, max_epochs=12,
                       milestones=[8, 11], warmup_iters=500, warmup_ratio=0.001,
                       batch_per_gpu=2, scale=(1333, 800), flip=0.5, pad=32)
DETECTOR_CONFIGS = sorted(f for f in os.listdir(os.path.join(ROOT, 'configs'))
                          if f.startswith(('mask_rcnn_', 'retinanet_'))
                          and not f.startswith(('mask_rcnn_fastvit', 'mask_rcnn_repvit')))


def pipeline_step(pipeline, kind):
    return next(step for step in pipeline if step['type'] == kind)


@pytest.mark.parametrize('name', DETECTOR_CONFIGS)
def test_recipe_is_the_official_one(name):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
    recipe = OFFICIAL_RECIPE
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, tuple(optimizer.betas), optimizer.weight_decay) == \
        ('AdamW', recipe['lr'], recipe['betas'], recipe['weight_decay'])
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'clip_grad' not in cfg.optim_wrapper
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert dict(paramwise) == dict(custom_keys={'attention_biases': dict(decay_mult=0.0)})
    assert not cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_cfg.max_epochs == recipe['max_epochs']
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end, warmup.by_epoch) == \
        ('LinearLR', recipe['warmup_ratio'], recipe['warmup_iters'], False)
    assert (steps.type, steps.milestones) == ('MultiStepLR', recipe['milestones'])
    assert cfg.train_dataloader.batch_size == recipe['batch_per_gpu']
    train, test = cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline
    assert (pipeline_step(train, 'Resize').scale, pipeline_step(train, 'Resize').keep_ratio) == \
        (recipe['scale'], True)
    assert pipeline_step(train, 'RandomFlip').prob == recipe['flip']
    assert pipeline_step(test, 'Resize').scale == recipe['scale']
    assert not any(step['type'] == 'RandomFlip' for step in test)
    assert cfg.model.data_preprocessor.pad_size_divisor == recipe['pad']
    assert cfg.model.data_preprocessor.bgr_to_rgb
    backbone = cfg.model.backbone
    assert backbone.norm_eval and backbone.get('frozen_stages', -1) == -1
    assert backbone.get('drop_path_rate', 0.0) == 0.0 and not backbone.get('with_cp', False)
    if backbone.type == 'EfficientViT':  # the papers' detectors: 7x7 in every stage
        assert backbone.get('window_size', 7) == 7
    neck = cfg.model.neck
    if name.startswith('mask_rcnn_'):
        assert (neck.num_extra_trans_convs, neck.get('add_extra_convs', False)) == (2, False)
    else:
        assert (neck.num_extra_trans_convs, neck.add_extra_convs) == (1, 'on_input')


@pytest.mark.parametrize('name', ['mask_rcnn_fastvit_sa12.py', 'mask_rcnn_repvit_m1_1.py'])
def test_timm_backbone_configs_share_the_recipe(name):
    """README: the timm-backbone configs use the same optimizer, schedule, data and
    padding as ours."""
    ours = Config.fromfile(os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s4.py'))
    theirs = Config.fromfile(os.path.join(ROOT, 'configs', name))
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'auto_scale_lr',
                'train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert theirs[key] == ours[key], key
    assert theirs.model.data_preprocessor == ours.model.data_preprocessor


def test_pad_to_32_keeps_every_level_aligned():
    """Padded to 32 (not 64), the stride-16 map is exact, so the transposed levels are
    exactly image/4 and image/8; the stride-64 map rounds up (3 rows for 160 pixels)."""
    from mmdet.testing import demo_mm_inputs
    model = build('mask_rcnn_shvit_s1.py').eval()
    packed = demo_mm_inputs(1, [[3, 150, 210]], num_items=[1])
    data = model.data_preprocessor(packed, False)
    height, width = data['inputs'].shape[-2:]
    assert (height, width) == (160, 224) and height % 64  # a multiple of 32, not of 64
    with torch.no_grad():
        levels = model.extract_feat(data['inputs'])
    sizes = [tuple(f.shape[-2:]) for f in levels]
    assert sizes == [(40, 56), (20, 28), (10, 14), (5, 7), (3, 4)]


def test_weight_decay_reaches_norms_but_not_attention_biases():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'mask_rcnn_efficientvit_m4.py'))
    model = build_model_from_config(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    named = dict(model.named_parameters())
    biases = [n for n in named if n.endswith('attention_biases')]
    norms = [n for n in named if '.bn.' in n]
    assert biases and norms
    assert all(decay[id(named[n])] == 0.0 for n in biases)
    assert all(decay[id(named[n])] == 0.05 for n in norms)
    assert decay[id(named['neck.trans_convs.0.bias'])] == 0.05


def test_neck_init_is_the_official_one():
    """Transposed convs: kaiming normal (fan_out, ReLU gain); other convs: xavier uniform."""
    torch.manual_seed(0)
    neck = TransposedFPN([224, 336, 448], 256, 5, num_extra_trans_convs=2)
    neck.init_weights()
    trans = neck.trans_convs[0].weight  # (in, out, 2, 2): fan_out = 256 * 4
    std = math.sqrt(2.0 / (256 * 4))
    assert abs(trans.std().item() - std) < 0.002
    # normal, not uniform: kaiming-uniform of this std is bounded by sqrt(3) std; a
    # normal sample of 262k values reaches past 4 std
    assert trans.abs().max().item() > 3.0 * std
    lateral = neck.lateral_convs[2].weight  # xavier uniform bound sqrt(6 / (fan_in + fan_out))
    bound = math.sqrt(6.0 / (448 + 256))
    assert lateral.abs().max().item() <= bound and lateral.abs().max().item() > 0.95 * bound
    assert all(float(m.bias.abs().max()) == 0.0 for m in neck.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))


def test_auto_scale_lr_is_off_unless_asked(monkeypatch, tmp_path):
    built = []

    class Runner:
        def train(self):
            pass

    monkeypatch.setattr(train, 'check_dataset_paths', lambda cfg, splits: None)
    monkeypatch.setattr(train, 'build_runner', lambda cfg: built.append(cfg) or Runner())
    config = os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py')
    train.train_main([config, '--work-dir', str(tmp_path)])
    train.train_main([config, '--work-dir', str(tmp_path), '--auto-scale-lr'])
    assert [cfg.auto_scale_lr.enable for cfg in built] == [False, True]
