"""Semantic segmentation: every config's model, training steps, mIoU through the tools."""
import os

import cv2
import numpy as np
import pytest
import torch

import efficientvit_det  # noqa: F401
from efficientvit_det.cli import test as test_tool
from efficientvit_det.cli.train import train_main
from efficientvit_det.errors import DatasetNotFoundError
from efficientvit_det.mmlab.scope import build_model_from_config as build_from_config
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from tests.support import ROOT


def seg_model(name):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
    return revert_sync_batchnorm(build_from_config(cfg))  # SyncBN needs a process group


def test_every_backbone_has_a_semantic_fpn_config():
    for backbone in efficientvit_det.BACKBONE_NAMES:
        assert os.path.exists(os.path.join(ROOT, 'configs', f'fpn_{backbone}_ade20k.py'))
    for backbone in ('shvit_s4', 'efficientvit_m4', 'uniform_l'):
        assert os.path.exists(os.path.join(ROOT, 'configs', f'upernet_{backbone}_ade20k.py'))


@pytest.mark.slow
@pytest.mark.parametrize('head', ['fpn', 'upernet'])
@pytest.mark.parametrize('backbone', ['shvit_s1', 'efficientvit_m0', 'uniform_xs'])
def test_train_step_and_whole_image_inference(head, backbone):
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    name = f'{head}_{backbone}_ade20k.py'
    if not os.path.exists(os.path.join(ROOT, 'configs', name)):
        cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'upernet_shvit_s4_ade20k.py'))
        dims = list(efficientvit_det.build_backbone(backbone).arch['embed_dims'])
        family, arch = efficientvit_det.BACKBONE_NAMES[backbone]
        cfg.model.backbone.update(type=family.__name__, arch=arch)
        cfg.model.neck.in_channels = dims
        # the head's width is not what this checks; 512 wide (mmseg's) its 3x3
        # bottleneck over four stride-4 maps took 5/6 of the test's time
        cfg.model.decode_head.channels = 64
        model = revert_sync_batchnorm(build_from_config(cfg))
    else:
        model = seg_model(name)
    torch.manual_seed(0)
    model.init_weights()
    model.train()
    samples = []
    # 96x96: maps of 6x6, 3x3 and 2x2 from the backbone (windows padded, or a map
    # smaller than a window); the prediction below runs at a larger, odd size
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 96, 96)))
        sample.set_metainfo(dict(img_shape=(96, 96), pad_shape=(96, 96), ori_shape=(96, 96)))
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 96, 96)).float()
                                                for _ in range(2)],
                                        data_samples=samples), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    for stage in range(3):
        grads = [p.grad for n, p in model.backbone.named_parameters()
                 if n.startswith(f'stages.{stage}.')]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    image = torch.randint(0, 255, (3, 333, 517)).float()
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=(333, 517), ori_shape=(333, 517)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
        (result,) = model.predict(data['inputs'], data['data_samples'])
    assert tuple(result.pred_sem_seg.data.shape) == (1, 333, 517)
    assert 0 <= result.pred_sem_seg.data.min() and result.pred_sem_seg.data.max() < 150


# ----------------------------------------------------------------------------- evaluation

def write_ade(root, count=4, seed=0):
    rng = np.random.default_rng(seed)
    for folder in ('training', 'validation'):
        os.makedirs(os.path.join(root, 'images', folder), exist_ok=True)
        os.makedirs(os.path.join(root, 'annotations', folder), exist_ok=True)
        for i in range(count):
            label = rng.integers(0, 151, size=(48, 64)).astype(np.uint8)
            label[:8] = 0
            image = rng.integers(0, 255, size=(48, 64, 3)).astype(np.uint8)
            cv2.imwrite(os.path.join(root, 'images', folder, f'ADE_{i:04d}.jpg'), image)
            cv2.imwrite(os.path.join(root, 'annotations', folder, f'ADE_{i:04d}.png'), label)


def test_perfect_prediction_gives_miou_100(tmp_path):
    from mmseg.registry import METRICS
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'fpn_shvit_s1_ade20k.py'))
    root = str(tmp_path / 'ade')
    write_ade(root)
    with DefaultScope.overwrite_default_scope('mmseg'):
        from mmseg.registry import DATASETS
        dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=root,
                                      pipeline=cfg.test_pipeline))
        metric = METRICS.build(cfg.test_evaluator)
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        gt = sample.gt_sem_seg.data
        assert (gt == 255).any() and gt[gt != 255].max() < 150  # reduce_zero_label applied
        prediction = gt.clone()
        prediction[gt == 255] = 0  # ignored pixels: any prediction is fine
        metric.process([], [dict(pred_sem_seg=dict(data=prediction),
                                 gt_sem_seg=dict(data=gt))])
    results = metric.compute_metrics(metric.results)
    assert results['mIoU'] == pytest.approx(100.0)
    assert results['aAcc'] == pytest.approx(100.0)


def test_class_iou_metric_returns_the_iou_of_each_present_class():
    """ClassIoUMetric (the toy configs' evaluator): each class's IoU among the
    returned metrics, exact, including a class that is labelled but never predicted
    (0: what a background-only model scores); a class neither labelled nor predicted
    outside ignored pixels is left out, as mIoU leaves it out."""
    from mmseg.registry import METRICS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        metric = METRICS.build(dict(type='ClassIoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = dict(classes=('bg', 'circle', 'rectangle', 'triangle', 'unused'))
    label = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 255]])
    prediction = torch.tensor([[0, 0, 1, 2], [2, 2, 0, 4]])  # 4 only where ignored
    metric.process([], [dict(pred_sem_seg=dict(data=prediction[None]),
                             gt_sem_seg=dict(data=label[None]))])
    metrics = metric.compute_metrics(metric.results)
    per_class = {key: value for key, value in metrics.items() if key.startswith('IoU.')}
    assert per_class == pytest.approx({'IoU.bg': 66.67, 'IoU.circle': 50.0,
                                       'IoU.rectangle': 66.67, 'IoU.triangle': 0.0})
    assert metrics['mIoU'] == pytest.approx(sum(per_class.values()) / 4, abs=0.01)


def test_toy_class_names_are_the_ade20k_names_of_their_labels():
    """The tables of benchmarks/toy_learning.py name the toy classes through
    ADE_TOY_CLASS_NAMES: it must match what mmseg calls the toy labels."""
    from mmseg.datasets import ADE20KDataset
    from efficientvit_det.mmlab.toy_data import ADE_BACKGROUND, ADE_SHAPE_LABELS, ADE_TOY_CLASS_NAMES
    classes = ADE20KDataset.METAINFO['classes']  # label L is class L - 1 (reduce_zero_label)
    labels = dict(background=ADE_BACKGROUND, **ADE_SHAPE_LABELS)
    assert {classes[label - 1]: toy for toy, label in labels.items()} == ADE_TOY_CLASS_NAMES


@pytest.mark.slow
def test_test_tool_reports_miou(tmp_path):
    config = os.path.join(ROOT, 'configs', 'toy', 'fpn_shvit_s1_ade20k_toy.py')
    root = str(tmp_path / 'ade')
    write_ade(root, count=2)
    model = build_from_config(Config.fromfile(config))
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    options = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]
    options += [f'{s}_dataloader.num_workers=0' for s in ('train', 'val', 'test')]
    options += [f'{s}_dataloader.persistent_workers=False' for s in ('train', 'val', 'test')]
    metrics = test_tool.test_main([config, str(checkpoint), '--work-dir', str(tmp_path / 'work'),
                                   '--out', str(tmp_path / 'pred'), '--cfg-options', *options])
    assert {'mIoU', 'mAcc', 'aAcc'} <= set(metrics)
    assert len(os.listdir(tmp_path / 'pred')) == 2


def test_test_tool_never_writes_label_maps_over_the_ground_truth(tmp_path):
    """mmseg names each predicted label map after its image: --out at the test set's
    annotation folder would replace the ground truth. Refused in one line before a
    model is built; every file unchanged."""
    from efficientvit_det.errors import OutputOverwritesInputError
    config = os.path.join(ROOT, 'configs', 'toy', 'fpn_shvit_s1_ade20k_toy.py')
    root = tmp_path / 'ade'
    write_ade(str(root), count=2)
    truth = root / 'annotations' / 'validation'
    before = {p: p.read_bytes() for p in root.rglob('*') if p.is_file()}
    with pytest.raises(OutputOverwritesInputError,
                       match=rf'^{truth} would replace the input .*: pass another --out$'):
        test_tool.test_main([config, str(tmp_path / 'never_read.pth'), '--out', str(truth),
                             '--cfg-options', f'test_dataloader.dataset.data_root={root}'])
    assert {p: p.read_bytes() for p in root.rglob('*') if p.is_file()} == before


def test_missing_ade_names_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as err:
        train_main([os.path.join(ROOT, 'configs', 'fpn_shvit_s1_ade20k.py')])
    assert 'data/ade/ADEChallengeData2016/images/training' in str(err.value)
    assert '{images,annotations}/{training,validation}' in str(err.value)


@pytest.mark.parametrize('name', sorted(f for f in os.listdir(os.path.join(ROOT, 'configs'))
                                        if f.endswith('_ade20k.py')))
def test_segmentation_recipes_are_the_documented_ones(name):
    """README's config table: Semantic FPN and UperNet recipes."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
    optimizer, paramwise = cfg.optim_wrapper.optimizer, cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0.0
    assert paramwise.custom_keys == {'attention_biases': dict(decay_mult=0.0)}
    assert cfg.model.data_preprocessor.test_cfg == dict(size_divisor=64)
    if name.startswith('fpn_'):
        assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 2e-4, 1e-4)
        assert [(s.type, s.power, s.end) for s in cfg.param_scheduler] == [
            ('PolyLR', 0.9, 40000)]
        assert (cfg.train_cfg.max_iters, cfg.train_dataloader.batch_size) == (40000, 4)
        assert cfg.auto_scale_lr.base_batch_size == 32
        assert cfg.model.data_preprocessor.size == (512, 512)
    else:
        assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 6e-5, 0.01)
        warmup, poly = cfg.param_scheduler
        assert (warmup.type, warmup.end, poly.type, poly.power, poly.end) == (
            'LinearLR', 1500, 'PolyLR', 1.0, 160000)
        assert cfg.train_cfg.max_iters == 160000
        assert cfg.model.auxiliary_head.type == 'FCNHead'


def test_no_pretrained_checkpoint_trains_from_scratch_with_a_warning():
    import logging
    from mmengine.logging import MMLogger
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append((record.levelno, record.getMessage()))
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model = efficientvit_det.build_backbone(
            'shvit_s1', init_cfg=dict(type='Pretrained', checkpoint=None))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    assert (logging.WARNING, "SHViT('s1'): no pretrained checkpoint given, training the "
            'backbone from scratch') in messages
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
