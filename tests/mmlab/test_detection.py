"""Detection: the neck, every config, Mask R-CNN / RetinaNet steps, the tools."""
import json
import math
import os

import numpy as np
import pytest
import torch

import efficientvit_det  # noqa: F401  (registers the modules)
from efficientvit_det.cli import test as test_tool
from efficientvit_det.cli.train import train_main
from efficientvit_det.errors import DatasetNotFoundError, PyramidStrideError
from efficientvit_det.models.neck import PyramidAdapter, TransposedFPN
# builds cfg.model offline: no pretrained downloads
from efficientvit_det.mmlab.scope import build_model_from_config as build_from_config
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from tests.support import CONFIGS, ROOT, load_config, toy_options


def test_config_directory_is_complete():
    names = {os.path.relpath(p, os.path.join(ROOT, 'configs')) for p in CONFIGS}
    for det in ('mask_rcnn', 'retinanet'):
        for backbone in efficientvit_det.BACKBONE_NAMES:
            assert f'{det}_{backbone}.py' in names
    assert {'mask_rcnn_fastvit_sa12.py', 'mask_rcnn_repvit_m1_1.py'} <= names


def predict_one_image(model, height, width):
    """One inference forward of a built detector or segmentor on a random image."""
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(model).eval()
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    if hasattr(model, 'decode_head'):
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=dict(img_shape=(height, width),
                                             ori_shape=(height, width)))
    else:
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=(height, width),
                                             ori_shape=(height, width), scale_factor=(1., 1.)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
        return model.predict(data['inputs'], data['data_samples'])[0]


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_config_builds_and_runs(path):
    """Every shipped config, UperNet and timm backbones included, builds and runs
    inference end to end (backbone, neck, heads, post-processing) on a small image."""
    cfg = Config.fromfile(path)
    model = build_from_config(cfg)  # includes the neck-vs-head stride check
    assert model.backbone is not None and model.neck is not None
    result = predict_one_image(model, 96, 160)
    if 'pred_sem_seg' in result:
        assert tuple(result.pred_sem_seg.data.shape) == (1, 96, 160)
    else:
        boxes = result.pred_instances.bboxes
        assert boxes.shape[1] == 4 and torch.isfinite(boxes).all()
        if cfg.model.get('roi_head', {}).get('mask_head'):
            assert tuple(result.pred_instances.masks.shape[1:]) == (96, 160)


def model_parts_that_differ(cfg, other):
    """The top-level model keys (backbone, neck, heads...) whose settings differ: what a
    diagnosis arm or a control changes against the config it is compared with."""
    return {k for k in {**cfg.model, **other.model} if cfg.model.get(k) != other.model.get(k)}


@pytest.mark.parametrize('ours,control', [
    ('mask_rcnn_shvit_s1_toy.py', 'mask_rcnn_r18_toy.py'),
    ('retinanet_shvit_s1_toy.py', 'retinanet_r18_toy.py'),
    ('fpn_shvit_s1_ade20k_toy.py', 'fpn_r18_ade20k_toy.py')])
def test_toy_learning_controls_differ_only_in_backbone_and_neck(ours, control):
    """benchmarks/toy_learning.py's control is the toy config with mmdet's / mmseg's
    ResNet-18 + FPN: everything else (data, schedule, optimizer, heads, the width of
    the pyramid) is the toy config's."""
    ours = Config.fromfile(os.path.join(ROOT, 'configs', 'toy', ours))
    control = Config.fromfile(os.path.join(ROOT, 'benchmarks', 'configs', control))
    for key in set(ours) | set(control):
        if key not in ('model', 'resnet18_backbone'):
            assert control.get(key) == ours.get(key), key
    assert model_parts_that_differ(ours, control) == {'backbone', 'neck'}
    assert control.model.neck.out_channels == ours.model.neck.out_channels
    model = build_from_config(control)
    assert type(model.backbone).__name__ == 'ResNet' and model.backbone.depth == 18
    if 'decode_head' in control.model:
        model = revert_sync_batchnorm(model)  # SyncBN needs a process group
        logits = model(torch.rand(1, 3, 64, 96) * 255, mode='tensor')
        assert tuple(logits.shape) == (1, control.model.decode_head.num_classes, 16, 24)
    else:
        assert predict_one_image(model, 96, 160).pred_instances.bboxes.shape[1] == 4


def test_the_stride16_diagnosis_control_feeds_our_neck_as_our_backbones_do():
    """benchmarks/configs/mask_rcnn_r18_from_stride16_toy.py: the ResNet-18 control
    whose neck starts at stride 16 (transposed convs for strides 4 and 8), else the
    control unchanged."""
    control = Config.fromfile(os.path.join(ROOT, 'benchmarks', 'configs', 'mask_rcnn_r18_toy.py'))
    diagnosis = Config.fromfile(
        os.path.join(ROOT, 'benchmarks', 'configs', 'mask_rcnn_r18_from_stride16_toy.py'))
    assert model_parts_that_differ(control, diagnosis) == {'backbone', 'neck'}
    assert dict(diagnosis.model.backbone, out_indices=None) == \
        dict(control.model.backbone, out_indices=None)
    model = build_from_config(diagnosis)
    assert model.neck.out_strides == [4, 8, 16, 32, 64] and len(model.neck.trans_convs) == 2
    assert not model.neck.extra_convs  # stride 64 max-pooled, as the stock FPN's
    features = model.backbone(torch.rand(1, 3, 96, 160))
    assert [tuple(f.shape[2:]) for f in features] == [(6, 10), (3, 5)]  # strides 16, 32
    assert predict_one_image(model, 96, 160).pred_instances.bboxes.shape[1] == 4


def test_the_stem_taps_diagnosis_arm_feeds_the_stems_fine_maps_to_the_neck():
    """benchmarks/configs/mask_rcnn_shvit_s1_stem_taps_toy.py: the toy Mask R-CNN
    whose neck reads strides 4 and 8 from the stem (no transposed convs), else
    the toy detector unchanged."""
    ours = Config.fromfile(os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py'))
    arm = Config.fromfile(
        os.path.join(ROOT, 'benchmarks', 'configs', 'mask_rcnn_shvit_s1_stem_taps_toy.py'))
    assert model_parts_that_differ(ours, arm) == {'backbone', 'neck'}
    model = build_from_config(arm)
    assert [f['reduction'] for f in model.backbone.feature_info] == model.neck.in_strides
    assert model.neck.out_strides == [4, 8, 16, 32, 64] and not model.neck.trans_convs
    features = model.backbone(torch.rand(1, 3, 96, 160))
    assert [f.shape[1] for f in features] == [32, 64, 128, 224, 320]
    assert [tuple(f.shape[2:]) for f in features[:2]] == [(24, 40), (12, 20)]
    assert predict_one_image(model, 96, 160).pred_instances.bboxes.shape[1] == 4


def test_the_kaiming_init_arm_starts_our_backbone_as_the_resnet18_control_starts():
    """benchmarks/configs/mask_rcnn_shvit_s1_kaiming_init_toy.py: the toy Mask R-CNN
    whose backbone convs start kaiming-normal over fan_out, as mmdet's ResNet-18's do,
    where ours start from PyTorch's default (kaiming-uniform, a=sqrt(5), over fan_in);
    the zero-initialised residual BatchNorms and everything else as the toy's."""
    from mmdet.registry import MODELS
    ours_cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py'))
    arm_cfg = Config.fromfile(
        os.path.join(ROOT, 'benchmarks', 'configs', 'mask_rcnn_shvit_s1_kaiming_init_toy.py'))
    assert model_parts_that_differ(ours_cfg, arm_cfg) == {'backbone'}
    assert dict(ours_cfg.model.backbone, init_cfg=None) == \
        dict(arm_cfg.model.backbone, init_cfg=None)

    def initialised(cfg):
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmdet'):
            backbone = MODELS.build(cfg.model.backbone)
        backbone.init_weights()
        return backbone

    def convs(backbone):  # the blocks' depthwise 3x3 convs (1152+ weights) included
        found = [m.weight for m in backbone.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= 1024]
        assert len(found) > 20
        return found

    def fan_in(weight):
        return weight[0].numel()

    def fan_out(weight):
        return weight.shape[0] * weight[0, 0].numel()

    ours, arm = initialised(ours_cfg), initialised(arm_cfg)
    for weight in convs(arm):  # normal, not uniform: tails beyond sqrt(3) std
        std = math.sqrt(2 / fan_out(weight))
        assert abs(weight.std().item() / std - 1) < 0.1 and weight.abs().max() > 2.5 * std
    for weight in convs(ours):
        bound = 1 / math.sqrt(fan_in(weight))  # uniform on (-bound, bound)
        assert abs(weight.std().item() * math.sqrt(3) / bound - 1) < 0.1
        assert weight.abs().max() <= bound

    def zero_norms(backbone):
        return [name for name, m in backbone.named_modules()
                if isinstance(m, torch.nn.BatchNorm2d) and not m.weight.any()]
    assert zero_norms(arm) == zero_norms(ours) and len(zero_norms(ours)) > 10


# ----------------------------------------------------------------------------- the neck

@pytest.mark.parametrize('trans,extra,num_outs,strides', [
    (2, False, 5, [4, 8, 16, 32, 64]),             # Mask R-CNN
    (1, 'on_input', 5, [8, 16, 32, 64, 128]),      # RetinaNet
    (2, False, 4, [4, 8, 16, 32]),                 # Semantic FPN
    (0, 'on_output', 5, [16, 32, 64, 128, 256]),   # plain FPN behaviour
])
def test_neck_levels_and_strides(trans, extra, num_outs, strides):
    neck = TransposedFPN([64, 128, 192], 32, num_outs, num_extra_trans_convs=trans,
                         add_extra_convs=extra)
    assert neck.out_strides == strides
    height, width = 333, 517  # odd sizes: backbone maps are ceil-divided
    inputs = [torch.randn(2, c, math.ceil(height / s), math.ceil(width / s))
              for c, s in zip((64, 128, 192), (16, 32, 64))]
    outs = neck(inputs)
    assert len(outs) == num_outs
    for out, stride in zip(outs, strides):
        expected = (math.ceil(height / 16) * 16 // stride, math.ceil(width / 16) * 16 // stride) \
            if stride < 16 else (math.ceil(height / stride), math.ceil(width / stride))
        assert out.shape == (2, 32) + expected, stride


def test_adapter_hands_on_each_stride_at_its_size_from_the_stage_it_names():
    """Strides 4, 8, 8, 8 (a dilated ResNet's) from 16 / 32 / 64 at odd image sizes:
    each output at its stride's size on the padded image, from the stage its source
    names (changing one stage changes only the outputs made from it)."""
    adapter = PyramidAdapter([64, 128, 192], [16, 32, 64], [24, 40, 48, 56], [4, 8, 8, 32])
    assert adapter.sources == [0, 0, 1, 2]  # the deepest output takes the deepest stage
    height, width = 333, 517
    inputs = [torch.randn(1, c, math.ceil(height / s), math.ceil(width / s))
              for c, s in zip((64, 128, 192), (16, 32, 64))]
    outs = adapter(inputs)
    padded = (math.ceil(height / 16) * 16, math.ceil(width / 16) * 16)
    for out, width_out, stride in zip(outs, (24, 40, 48, 56), (4, 8, 8, 32)):
        assert out.shape == (1, width_out, math.ceil(padded[0] / stride),
                             math.ceil(padded[1] / stride)), stride
    changed = adapter([inputs[0], inputs[1] + 1, inputs[2]])
    assert [not torch.equal(a, b) for a, b in zip(outs, changed)] == [False, False, True, False]
    coarser = PyramidAdapter([64], [16], [32, 48], [64, 128])(inputs[:1])  # 3x3 stride-2
    assert [tuple(x.shape) for x in coarser] == [
        (1, 32, math.ceil(height / 64), math.ceil(width / 64)),
        (1, 48, math.ceil(height / 128), math.ceil(width / 128))]
    with pytest.raises(ValueError, match='sources'):
        PyramidAdapter([64], [16], [8, 8], [8, 16], sources=[0, 1])


def test_neck_rejects_unknown_extra_convs():
    with pytest.raises(ValueError, match='on_input'):
        TransposedFPN([64, 128, 192], 32, 5, add_extra_convs='on_everything')


def test_stock_fpn_behind_our_backbone_fails_at_build():
    cfg = load_config('mask_rcnn_shvit_s1.py')
    cfg.model.neck = dict(type='FPN', in_channels=[128, 224, 320], out_channels=256, num_outs=5)
    with pytest.raises(PyramidStrideError, match=r'expects \[4, 8, 16, 32, 64\].*TransposedFPN'):
        build_from_config(cfg)


def test_retinanet_with_mask_rcnn_neck_fails_at_build():
    cfg = load_config('retinanet_efficientvit_m0.py')
    cfg.model.neck.num_extra_trans_convs = 2
    cfg.model.neck.add_extra_convs = False
    with pytest.raises(PyramidStrideError, match=r'bbox_head anchors expects \[8, 16, 32, 64, 128\]'):
        build_from_config(cfg)


# ----------------------------------------------------------------------------- training steps

@pytest.mark.slow
@pytest.mark.parametrize('detector', ['mask_rcnn', 'retinanet'])
@pytest.mark.parametrize('backbone', ['shvit_s1', 'efficientvit_m0', 'uniform_xs'])
def test_loss_step_and_predict(detector, backbone):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    model = build_from_config(load_config(f'{detector}_{backbone}.py'))
    model.init_weights()
    with_mask = detector == 'mask_rcnn'
    sizes = [[3, 129, 197], [3, 161, 113]]
    packed = demo_mm_inputs(2, sizes, num_items=[3, 2], with_mask=with_mask)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)) + \
        sum(sum(v) for k, v in losses.items() if 'loss' in k and isinstance(v, list))
    assert torch.isfinite(total)
    total.backward()
    for stage in range(3):
        grads = [p.grad for n, p in model.backbone.named_parameters()
                 if n.startswith(f'stages.{stage}.')]
        assert grads and all(g is not None for g in grads), f'stage {stage} got no gradient'
        assert any(g.abs().sum() > 0 for g in grads), f'stage {stage} gradients are all zero'

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        results = model.predict(data['inputs'], data['data_samples'])
    for result, size in zip(results, sizes):
        instances = result.pred_instances
        assert instances.bboxes.shape[1] == 4 and len(instances.scores) == len(instances.labels)
        if with_mask and len(instances):
            assert tuple(instances.masks.shape[1:]) == tuple(size[1:])


# ----------------------------------------------------------------------------- tools

COCO_KEYS = [f'coco/{kind}_{metric}' for kind in ('bbox', 'segm')
             for metric in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')]


@pytest.mark.slow
def test_test_tool_reports_coco_metrics(toy_coco, tmp_path):
    config = os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py')
    model = build_from_config(Config.fromfile(config))
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    out = tmp_path / 'predictions.pkl'
    metrics = test_tool.test_main([config, str(checkpoint), '--work-dir', str(tmp_path / 'work'),
                                   '--out', str(out), '--cfg-options', *toy_options(toy_coco)])
    assert set(COCO_KEYS) <= set(metrics)
    assert out.exists()


def test_test_tool_never_draws_over_the_test_sets_own_files(toy_coco, tmp_path):
    """mmdet names each drawing after its image: --show-dir at the val image folder
    (or the data root) would replace the images. Refused in one line before anything
    is built; every file unchanged."""
    from efficientvit_det.errors import OutputOverwritesInputError
    config = os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py')
    before = {p: p.read_bytes() for p in toy_coco.rglob('*') if p.is_file()}
    for folder in (toy_coco / 'val', toy_coco / 'annotations' / 'instances_val.json'):
        with pytest.raises(OutputOverwritesInputError, match=rf'^{folder} would replace the '
                           rf'input {toy_coco}/.*: pass another --show-dir$'):
            test_tool.test_main([config, str(tmp_path / 'never_read.pth'), '--show-dir',
                                 str(folder), '--cfg-options', *toy_options(toy_coco)])
    assert {p: p.read_bytes() for p in toy_coco.rglob('*') if p.is_file()} == before


def test_perfect_predictions_score_ap_one(toy_coco):
    """The configured COCO evaluator gives 1.0 to the ground truth itself."""
    from mmdet.registry import METRICS
    from pycocotools import mask as mask_utils
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py'))
    ann_file = f'{toy_coco}/annotations/instances_val.json'
    with DefaultScope.overwrite_default_scope('mmdet'):
        metric = METRICS.build(dict(cfg.test_evaluator, ann_file=ann_file))
    coco = json.load(open(ann_file))
    metric.dataset_meta = dict(classes=cfg.toy_metainfo['classes'])
    samples = []
    for image in coco['images']:
        anns = [a for a in coco['annotations']
                if a['image_id'] == image['id'] and not a['iscrowd']]
        masks = []
        for a in anns:
            seg = a['segmentation']
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, image['height'], image['width'])) \
                if isinstance(seg, list) else seg
            masks.append(mask_utils.decode(rle))
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
        samples.append(dict(
            img_id=image['id'], ori_shape=(image['height'], image['width']),
            pred_instances=dict(
                bboxes=torch.tensor(boxes, dtype=torch.float).view(-1, 4),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([a['category_id'] - 1 for a in anns], dtype=torch.long),
                masks=torch.from_numpy(np.stack(masks) if masks else
                                       np.zeros((0, image['height'], image['width']))).bool())))
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_missing_coco_names_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as err:
        train_main([os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py')])
    message = str(err.value)
    assert 'data/coco/annotations/instances_train2017.json' in message
    assert '--cfg-options train_dataloader.dataset.data_root=' in message
    assert not (tmp_path / 'work_dirs').exists() or not any((tmp_path / 'work_dirs').iterdir())


def test_test_tool_checks_options_and_data_before_loading_anything(tmp_path, monkeypatch):
    """tools/test.py stops on a misspelt option and on a missing dataset with one line,
    before it builds the runner or opens the checkpoint (which does not exist here)."""
    from efficientvit_det.errors import ConfigOptionError
    config = os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py')
    missing = str(tmp_path / 'no.pth')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigOptionError, match="unknown option 'intervall'"):
        test_tool.test_main([config, missing, '--cfg-options', 'default_hooks.logger.intervall=5'])
    with pytest.raises(DatasetNotFoundError, match='data/coco/annotations/instances_val2017.json'):
        test_tool.test_main([config, missing])


def test_timm_backbone_freezes_and_reports_strides():
    from efficientvit_det.models.timm_backbone import TimmBackbone
    backbone = TimmBackbone('repvit_m1_1', frozen_stages=1, norm_eval=True).train()
    assert [f['reduction'] for f in backbone.feature_info] == [4, 8, 16, 32]
    frozen = {n for n, p in backbone.named_parameters() if not p.requires_grad}
    assert any(n.startswith('model.stem') for n in frozen)
    assert any(n.startswith('model.stages_0') for n in frozen)
    assert not any(n.startswith('model.stages_1') for n in frozen)
    assert all(not m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(KeyError, match='timm has no model'):
        TimmBackbone('not_a_model')


def test_readme_backbone_swap_builds_and_runs(tmp_path):
    """The 'Swap a backbone' snippet in README, verbatim, next to the real configs."""
    readme = open(os.path.join(ROOT, 'README.md')).read()
    section = readme[readme.index('### Swap a backbone'):]
    start = section.index('```python\n') + len('```python\n')
    snippet = section[start:section.index('\n```', start)]
    path = os.path.join(ROOT, 'configs', f'_readme_swap_{os.getpid()}.py')
    with open(path, 'w') as f:
        f.write(snippet + '\n')
    try:
        cfg = Config.fromfile(path)
    finally:
        os.remove(path)
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch) == ('EfficientViT', 'm4')
    assert backbone.init_cfg.checkpoint == 'release:efficientvit_m4'
    model = build_from_config(cfg).eval()
    with torch.no_grad():
        levels = model.extract_feat(torch.randn(1, 3, 128, 128))
    assert [f.shape[-1] for f in levels] == [32, 16, 8, 4, 2]
    assert all(f.shape[1] == 256 for f in levels)
