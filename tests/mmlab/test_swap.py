"""swap_backbone / tools/swap_backbone.py: our backbones and a timm model in mmdet's
and mmseg's models, each swapped model trained one step and asked to predict; the
README's table is the one these tests check."""
import os
import re

import pytest
import torch

from efficientvit_det.errors import BackboneArgumentError, PyramidStrideError, SwapRefusedError
from efficientvit_det.mmlab.swap import plan_swap, swap_backbone
from tests.support import ROOT, load_script

#: model -> (its config, how ours fit it, how timm's ResNet-18 fits it): README's table
ZOO = {
    'Faster R-CNN': ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                     'TransposedFPN', 'levels'),
    'Cascade Mask R-CNN': ('mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
                           'TransposedFPN', 'levels'),
    'FCOS': ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'TransposedFPN', 'levels'),
    'ATSS': ('mmdet::atss/atss_r50_fpn_1x_coco.py', 'TransposedFPN', 'levels'),
    'RTMDet': ('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 'PyramidAdapter', 'levels'),
    'DINO': ('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', 'PyramidAdapter', 'levels'),
    'Mask2Former (instance)': ('mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
                               'PyramidAdapter', 'levels'),
    'SOLOv2': ('mmdet::solov2/solov2-light_r18_fpn_ms-3x_coco.py', 'TransposedFPN', 'levels'),
    'UperNet': ('mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
                'PyramidAdapter', 'levels'),
    'DeepLabV3+': ('mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py',
                   'PyramidAdapter', 'PyramidAdapter'),
    'SegFormer head': ('mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
                       'PyramidAdapter', 'levels'),
    # its neck takes the widths coarsest first: the adapter hands on the old widths
    'YOLOv3': ('mmdet::yolo/yolov3_d53_8xb8-320-273e_coco.py', 'PyramidAdapter',
               'PyramidAdapter'),
}
#: one backbone of each family and a timm model
OURS = ('shvit_s1', 'efficientvit_m0', 'uniform_xs')
BACKBONES = OURS + ('timm:resnet18',)
BACKBONE_TYPES = {'shvit': 'SHViT', 'efficientvit': 'EfficientViT', 'uniform': 'UniForm'}
#: refused (with any backbone), with the start of the reason README gives
REFUSED = {
    'DPT': ('mmseg::dpt/dpt_vit-b16_8xb2-160k_ade20k-512x512.py',
            'model.decode_head (DPTHead) reads what model.backbone (VisionTransformer) returns, '
            '(list, list, list, list), not feature maps'),
    'Faster R-CNN C4': ('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py',
                        'FasterRCNN reads its backbone without a neck, in model.rpn_head and '
                        'model.roi_head'),
}
#: cheap enough for the quick lane (a few seconds each); the rest run in the full suite
QUICK = {('FCOS', 'uniform_xs'), ('RTMDet', 'efficientvit_m0'), ('ATSS', 'shvit_s1'),
         ('SegFormer head', 'timm:resnet18')}
CELL = {'TransposedFPN': 'works: TransposedFPN for its FPN',
        'PyramidAdapter': 'works: PyramidAdapter to its strides',
        'levels': 'works: its own levels, widths set'}


def trained_family(model: str) -> str:
    """Our three families share one plan per model (the same strides; only their
    widths differ), so each trains a step in a third of the models, in turn, and its
    plan stands for the other two's (checked equal below)."""
    return OURS[list(ZOO).index(model) % len(OURS)]


def zoo_cases():
    for model, (config, ours, theirs) in ZOO.items():
        for backbone in (trained_family(model), 'timm:resnet18'):
            marks = () if (model, backbone) in QUICK else (pytest.mark.slow,)
            method = theirs if backbone.startswith('timm:') else ours
            yield pytest.param(config, backbone, method, marks=marks,
                               id=f'{model}-{backbone}')


@pytest.mark.parametrize('config,backbone,method', zoo_cases())
def test_swapped_model_trains_a_step_and_predicts(config, backbone, method):
    """The swap builds the new backbone, hands the model's neck or heads the strides
    its own backbone gave, trains one step (finite losses, gradients into the
    backbone) and predicts results of the form mmdet's / mmseg's tools read."""
    from efficientvit_det.mmlab.pyramid import backbone_strides, neck_strides
    from efficientvit_det.mmlab.scope import build_model_from_config, read_config
    from efficientvit_det.mmlab.step_check import check_one_step
    from efficientvit_det.mmlab.swap import levels_of_original, swapped
    plan, cfg = swapped(config, backbone, weights='none')
    assert plan.method == method
    model = build_model_from_config(cfg)
    assert type(model.backbone).__name__ == (
        'TimmBackbone' if backbone.startswith('timm:') else BACKBONE_TYPES[backbone.split('_')[0]])
    old = [stride for stride, _ in levels_of_original(read_config(config))]
    if method == 'PyramidAdapter':
        first = model.neck[0] if isinstance(model.neck, torch.nn.Sequential) else model.neck
        assert first.out_strides == old
    elif method == 'levels':
        assert backbone_strides(model.backbone) == old
    else:  # TransposedFPN: the outputs the model's FPN gave on its own backbone
        original = build_model_from_config(read_config(config))
        assert neck_strides(model.neck, backbone_strides(model.backbone)) == \
            neck_strides(original.neck, old)
    report = check_one_step(cfg)
    assert report.ok, report
    if 'mask' in config or 'solo' in config:
        assert 'masks' in report.prediction


#: what makes a plan the same for two backbones of ours: how it fits the levels and the
#: strides it hands on, whatever the widths
PLAN_STRIDES = ('out_strides', 'in_strides', 'num_outs', 'num_extra_trans_convs', 'sources')


def plan_shape(plan):
    neck = plan.model.get('neck')
    necks = neck if isinstance(neck, list) else [neck] if isinstance(neck, dict) else []
    return plan.method, sorted(plan.model), [
        {key: part.get(key) for key in PLAN_STRIDES} for part in necks if isinstance(part, dict)]


@pytest.mark.slow
@pytest.mark.parametrize('model', list(ZOO))
def test_each_of_our_families_gets_the_plan_of_the_one_trained_in_that_model(model):
    """The families not trained a step in ``model`` (above) get the same plan as the
    one that is: the same method, the same keys overridden, the same strides handed
    on; only widths (and the backbone itself) differ."""
    config = ZOO[model][0]
    trained = plan_shape(plan_swap(config, trained_family(model), 'none'))
    assert trained[0] == ZOO[model][1]
    for backbone in OURS:
        assert plan_shape(plan_swap(config, backbone, 'none')) == trained, backbone


def readme_table() -> str:
    rows = ['| Model | base config | SHViT, EfficientViT, UniForm | `timm:resnet18` |',
            '|---|---|---|---|']
    for model, (config, ours, theirs) in ZOO.items():
        rows.append(f'| {model} | `{config}` | {CELL[ours]} | {CELL[theirs]} |')
    for model, (config, reason) in REFUSED.items():
        rows.append(f'| {model} | `{config}` | refused: {reason} | refused |')
    return '\n'.join(rows)


def test_readme_table_is_what_the_tests_check():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        assert readme_table() in f.read()


@pytest.mark.parametrize('backbone', BACKBONES)
@pytest.mark.parametrize('name', REFUSED)
def test_models_that_cannot_fit_are_refused_naming_the_part(name, backbone):
    config, reason = REFUSED[name]
    with pytest.raises(SwapRefusedError, match=re.escape(reason)):
        plan_swap(config, backbone)


@pytest.mark.parametrize('config', [
    'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',  # imports='mmdet.models'
    'mmseg::vit/vit_deit-s16_upernet_8xb2-80k_ade20k-512x512.py'])  # neck=None
def test_configs_written_in_other_forms_swap(config):
    cfg = swap_backbone(config, 'shvit_s1', 'none')
    assert cfg.custom_imports.imports[-1] == 'efficientvit_det'
    assert all(len(name) > 1 for name in cfg.custom_imports.imports)
    assert type(cfg.model.neck).__name__ in ('ConfigDict', 'list')


def test_strides_no_power_of_two_reaches_are_refused_naming_the_part():
    with pytest.raises(SwapRefusedError, match=r"model.neck reads stride 8, which "
                       r"timm:vit_small_patch14_dinov2's strides \[14, 14, 14\] reach by no "
                       "power of two"):
        plan_swap(ZOO['RTMDet'][0], 'timm:vit_small_patch14_dinov2')


def test_a_plain_fpn_becomes_a_transposed_fpn_with_the_strides_the_heads_read():
    from efficientvit_det.mmlab.scope import build_model_from_config
    model = build_model_from_config(swap_backbone(ZOO['FCOS'][0], 'shvit_s1', 'none'))
    assert type(model.neck).__name__ == 'TransposedFPN'
    assert model.neck.out_strides == [8, 16, 32, 64, 128] == model.bbox_head.strides
    assert model.neck.add_extra_convs == 'on_output' and model.neck.relu_before_extra_convs


def test_an_adapter_hands_the_model_its_old_strides_and_the_consumers_take_the_widths():
    plan = plan_swap(ZOO['DeepLabV3+'][0], 'shvit_s1')
    adapter = plan.model['neck']
    assert adapter['out_strides'] == [4, 8, 8, 8]  # the dilated ResNet's levels
    assert adapter['sources'] == [0, 0, 1, 2]  # every stage used, the deepest last
    assert adapter['out_channels'] == [128, 128, 224, 320]
    assert plan.model['decode_head'] == dict(in_channels=320, c1_in_channels=128)
    assert plan.model['auxiliary_head'] == dict(in_channels=224)
    assert plan.model['pretrained'] is None  # mmseg would hand the ResNet's weights on

    rtmdet = plan_swap(ZOO['RTMDet'][0], 'shvit_s1').model['neck']
    assert rtmdet[0]['type'] == 'PyramidAdapter' and rtmdet[0]['out_strides'] == [8, 16, 32]
    assert rtmdet[1]['type'] == 'CSPNeXtPAFPN' and rtmdet[1]['in_channels'] == [128, 224, 320]


def test_the_input_normalisation_becomes_the_backbones_own():
    plan = plan_swap(ZOO['FCOS'][0], 'shvit_s1')  # mmdet's FCOS: caffe BGR, std 1
    assert plan.model['data_preprocessor'] == dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
    assert 'data_preprocessor' not in plan_swap(ZOO['ATSS'][0], 'shvit_s1').model


def test_weights_default_to_the_release_and_say_where_there_is_none():
    faster = ZOO['Faster R-CNN'][0]
    plan = plan_swap(faster, 'shvit_s1')
    assert plan.model['backbone']['init_cfg']['checkpoint'] == 'release:shvit_s1'
    assert plan.model['backbone']['norm_eval'] is True
    plan = plan_swap(faster, 'uniform_xs')
    assert plan.model['backbone']['init_cfg']['checkpoint'] is None
    assert 'no released ImageNet weights' in plan.why['backbone']
    assert plan.model['backbone']['norm_eval'] is False  # statistics of its own to learn
    assert plan_swap(faster, 'timm:resnet18').model['backbone']['pretrained'] is True
    assert plan_swap(faster, 'timm:resnet18', 'none').model['backbone']['pretrained'] is False
    with pytest.raises(SwapRefusedError, match='a timm backbone takes a local file'):
        plan_swap(faster, 'timm:resnet18', 'https://example.org/resnet18.pth')
    plan = plan_swap(faster, 'efficientvit_m0', 'mine.pth')
    assert plan.model['backbone']['init_cfg']['checkpoint'] == 'mine.pth'
    assert '7x7 attention windows' in plan.why['backbone']


def test_unknown_backbones_and_configs_are_named():
    with pytest.raises(BackboneArgumentError, match="unknown backbone 'shvit_s9'"):
        plan_swap(ZOO['FCOS'][0], 'shvit_s9')
    with pytest.raises(BackboneArgumentError, match="timm has no model 'resnet_nope'"):
        plan_swap(ZOO['FCOS'][0], 'timm:resnet_nope')
    from efficientvit_det.errors import ConfigFileError
    with pytest.raises(ConfigFileError, match='config not found: mmdet::nope/x.py'):
        plan_swap('mmdet::nope/x.py', 'shvit_s1')


def test_a_list_of_necks_is_checked_for_the_strides_it_feeds_the_heads():
    """An adapter before an FPN whose strides do not match the RPN is caught at build
    time, through the Sequential the list becomes."""
    from mmengine.config import Config

    from efficientvit_det.mmlab.scope import build_model_from_config
    cfg = swap_backbone(ZOO['Faster R-CNN'][0], 'timm:resnet18', 'none')
    fpn = cfg.model.neck.to_dict()
    cfg = Config(dict(cfg.to_dict(), model=dict(cfg.model.to_dict(), neck=[
        dict(type='PyramidAdapter', in_channels=[64, 128, 256, 512], in_strides=[4, 8, 16, 32],
             out_channels=[64, 128, 256, 512], out_strides=[8, 16, 32, 64]), fpn])))
    with pytest.raises(PyramidStrideError, match=r'outputs strides \[8, 16, 32, 64, 128\]'):
        build_model_from_config(cfg)


def test_the_tool_writes_the_config_the_function_returns(tmp_path, capsys):
    tool = load_script('tools/swap_backbone.py')
    out = tmp_path / 'configs' / 'fcos_shvit.py'
    base = os.path.join(ROOT, 'benchmarks', 'configs', 'fcos_r18_toy.py')
    plan = tool.main([base, '--backbone', 'shvit_s1', '--weights', 'none', '--out', str(out)])
    printed = capsys.readouterr().out
    assert f'wrote {out}' in printed and 'model.neck: our TransposedFPN' in printed
    assert plan.method == 'TransposedFPN'
    text = out.read_text()
    assert "_base_ = '" in text and '# our TransposedFPN in place of the FPN' in text
    from efficientvit_det.mmlab.scope import read_config
    written = read_config(str(out))
    assert written.model.to_dict() == swap_backbone(base, 'shvit_s1', 'none').model.to_dict()
    import efficientvit_det  # the public name gives the same config
    assert efficientvit_det.swap_backbone(base, 'shvit_s1', 'none').model.to_dict() == \
        written.model.to_dict()

    plan = tool.main([base, '--backbone', 'uniform_xs', '--out', str(out), '--force',
                      '--check'])
    assert 'one step: loss' in capsys.readouterr().out and plan.backbone == 'uniform_xs'
    assert "type='UniForm'" in out.read_text()

    out.write_text('# mine\n')  # never overwritten without --force
    with pytest.raises(SystemExit):
        tool.main([base, '--backbone', 'shvit_s1', '--out', str(out)])
    assert 'exists; pass --force' in capsys.readouterr().err
    assert out.read_text() == '# mine\n'


def test_the_committed_fcos_config_is_what_the_tool_writes(tmp_path):
    tool = load_script('tools/swap_backbone.py')
    folder = os.path.join(ROOT, 'benchmarks', 'configs')
    out = tmp_path / 'fcos_shvit_s1_toy.py'
    tool.main([os.path.join(folder, 'fcos_r18_toy.py'), '--backbone', 'shvit_s1',
               '--weights', 'none', '--out', str(out)])
    with open(os.path.join(folder, 'fcos_shvit_s1_toy.py'), encoding='utf-8') as f:
        committed = f.read()

    def without_base(text):  # the tool names the base relative to where the file goes
        return [line for line in text.splitlines()
                if not line.startswith(('_base_ = ', '# shvit_s1 in place of'))]
    assert without_base(out.read_text()) == without_base(committed)


@pytest.mark.slow
def test_a_swapped_config_is_one_of_ours_in_every_tool(toy_coco, tmp_path):
    """benchmarks/configs/fcos_shvit_s1_toy.py (mmdet's FCOS, SHViT-S1 swapped in by
    the tool) trains, tests, loads strictly, predicts, is counted and timed; the
    whole-detector timing refuses FCOS in one line."""
    from efficientvit_det.checkpoints import CheckpointMismatchError
    from efficientvit_det.cli import benchmark_latency, get_flops, infer
    from efficientvit_det.cli import test as test_tool
    from efficientvit_det.cli.train import train_main
    from efficientvit_det.errors import ExportUnsupported
    from efficientvit_det.mmlab.toy_runs import toy_run_options
    from tests.support import toy_options
    config = os.path.join(ROOT, 'benchmarks', 'configs', 'fcos_shvit_s1_toy.py')
    options = toy_run_options(config, str(toy_coco), 1) + toy_options(toy_coco)
    train_main([config, '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options])
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    metrics = test_tool.test_main([config, str(checkpoint), '--work-dir', str(tmp_path / 'test'),
                                   '--cfg-options', *options,  # two iterations: low scores
                                   'model.test_cfg.score_thr=0.0'])
    assert 'coco/bbox_mAP' in metrics

    control = os.path.join(ROOT, 'benchmarks', 'configs', 'fcos_r18_toy.py')
    from efficientvit_det.mmlab.scope import build_model_from_config
    torch.save({'state_dict': build_model_from_config(control).state_dict()},
               tmp_path / 'r18.pth')
    with pytest.raises(CheckpointMismatchError):  # strict: the control's weights do not fit
        test_tool.test_main([config, str(tmp_path / 'r18.pth'), '--work-dir',
                             str(tmp_path / 'test_r18'), '--cfg-options', *options])

    summary = infer.main([str(toy_coco / 'val'), config, '--weights', str(checkpoint),
                          '--out-dir', str(tmp_path / 'out')])
    assert summary['images'] == 4 and len(os.listdir(tmp_path / 'out' / 'vis')) == 4

    parts = {row['part'] for row in get_flops.main([config, '--shape', '128'])}
    assert {'backbone', 'neck', 'bbox_head'} <= parts
    rows = benchmark_latency.main(['--config', config, '--shape', '128', '--iters', '1',
                                   '--warmup', '0'])
    assert rows and all(row['status'] == 'ok' for row in rows)
    with pytest.raises(ExportUnsupported, match='^FCOS: whole-detector graphs cover'):
        benchmark_latency.main(['--config', config, '--whole', '--shape', '128'])
