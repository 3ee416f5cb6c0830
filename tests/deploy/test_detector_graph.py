"""Whole detectors as one graph (image -> final detections) and their ONNX export:
the graph computes what mmdet's predict computes, the export what the graph does,
and a wrong export is caught."""
import os
import re
import types
from importlib import import_module

import pytest
import torch

from efficientvit_det.benchmark import grid
from efficientvit_det.cli import benchmark_latency as tool
from efficientvit_det.cli import export_onnx as export_tool
from efficientvit_det.deploy import detector_graph as graph_module
from efficientvit_det.deploy.detector_graph import (AGREEMENT, DetectorGraph, as_detections,
                                                    match_detections, reference_detections)
from efficientvit_det.deploy.targets import build_target
from efficientvit_det.errors import ExportUnsupported
from tests.support import ROOT, TOY_MASK_RCNN, cfg_options

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


def _toy_val_image(data_root):
    return os.path.join(data_root, 'val', sorted(os.listdir(os.path.join(data_root, 'val')))[0])


def _operators(graph):
    """Operator types in an ONNX graph and its subgraphs (NMS sits in an If branch)."""
    found = set()
    for node in graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            for subgraph in [attribute.g] * attribute.HasField('g') + list(attribute.graphs):
                found |= _operators(subgraph)
    return found


def _reports(printed):
    """(against, verdict, detections there) of each line the export tool printed."""
    return re.findall(r"ONNX Runtime vs (PyTorch|mmdet's predict): (ok|MISMATCH) "
                      r"\((\d+) detections there", printed)


def _check_export_report(printed, dynamic, least):
    """The export tool validated against PyTorch and mmdet's predict, at the export
    size and, for a dynamic file, at its second size; ``least`` detections there."""
    reports = _reports(printed)
    assert [(a, v) for a, v, _ in reports] == [('PyTorch', 'ok'), ("mmdet's predict", 'ok')] * (
        1 + dynamic), printed
    assert all(int(count) >= least for _, _, count in reports[1::2])


def _check_exported_file(path, dynamic, output_names):
    model = onnx.load(str(path))
    height, width = model.graph.input[0].type.tensor_type.shape.dim[2:]
    assert (height.dim_param, width.dim_param) == (('height', 'width') if dynamic else ('', ''))
    operators = _operators(model.graph)
    assert 'NonMaxSuppression' in operators
    assert ('RoiAlign' in operators) == ('masks' in output_names)
    assert [o.name for o in model.graph.output] == output_names


@pytest.mark.slow
def test_whole_export_of_a_trained_detector_matches_mmdet(trained_toy, tmp_path, capsys):
    """The trained toy Mask R-CNN's checkpoint (a file as training writes it), a toy
    image: the graph in PyTorch finds exactly mmdet's detections, and the dynamic
    ONNX file (NonMaxSuppression, RoiAlign) finds them too at two sizes. Trained
    weights, because random ones make near-equal box scores whose ties mmdet breaks
    its own way; the other families and RetinaNet: below."""
    config, checkpoint, data, _ = trained_toy()
    graph = build_target(config=config, whole=True, checkpoint=checkpoint).model
    image = export_tool.detector_input(None, _toy_val_image(data), 200, 250)
    expected = reference_detections(graph.model, image)
    with torch.no_grad():
        found = as_detections(graph(image))
    report = match_detections(expected, found, (200, 250))
    assert report['expected'] >= 10 and report['unpaired'] == 0, report
    assert report['max_box_diff_px'] < 1e-4 and report['max_score_diff'] < 1e-6, report
    assert report.get('min_mask_iou', 1.0) == 1.0, report

    out = tmp_path / 'mask_rcnn.onnx'
    assert export_tool.main(['--config', config, '--whole', '--checkpoint', checkpoint,
                             '--image', _toy_val_image(data), '--shape', '200x250',
                             '--out', str(out), '--dynamic']) == 0
    printed = capsys.readouterr().out
    _check_export_report(printed, dynamic=True, least=10)
    assert 'input [1, 3, 272, 290]' in printed  # the second size checked
    assert graph.output_names == ['boxes', 'scores', 'labels', 'masks']
    _check_exported_file(out, True, graph.output_names)


@pytest.mark.slow
@pytest.mark.parametrize('config', ['retinanet_shvit_s1', 'retinanet_efficientvit_m0',
                                    'retinanet_uniform_xs'])
def test_whole_export_of_each_family_with_a_checkpoint_matches_mmdet(config, tmp_path, capsys):
    """Each family's backbone in RetinaNet, random non-trivial weights given as a
    checkpoint file and BN folded: ONNX Runtime finds the detections of the graph in
    PyTorch and of mmdet's predict (measured: a random RetinaNet's detections pair
    exactly, a random Mask R-CNN's near-equal box scores do not); SHViT's file takes
    any size (the others' above their window: below)."""
    path = os.path.join(ROOT, 'configs', f'{config}.py')
    target = build_target(config=path, whole=True)
    checkpoint = tmp_path / 'random.pth'
    torch.save({'state_dict': target.model.model.state_dict()}, checkpoint)
    dynamic = 'shvit' in config
    out = tmp_path / 'retinanet.onnx'
    assert export_tool.main(['--config', path, '--whole', '--fused', '--checkpoint',
                             str(checkpoint), '--shape', '128x160', '--out', str(out)]
                            + ['--dynamic'] * dynamic) == 0
    _check_export_report(capsys.readouterr().out, dynamic, least=100)
    assert target.output_names == ['boxes', 'scores', 'labels']
    _check_exported_file(out, dynamic, target.output_names)


@pytest.mark.slow
def test_a_wrong_roi_align_scale_is_caught_and_the_file_set_aside(trained_toy, tmp_path,
                                                                  monkeypatch, capsys):
    """RoIs pooled at twice the right scale, in the graph and so in the export:
    mmdet's predict disagrees, so the tool keeps the file as OUT.invalid.onnx,
    leaves OUT alone and exits 1."""
    config, checkpoint, data, _ = trained_toy()
    real_roi_align = __import__('torchvision').ops.roi_align

    def doubled_scale(features, rois, size, scale, *args, **kwargs):
        return real_roi_align(features, rois, size, 2 * scale, *args, **kwargs)
    monkeypatch.setattr('torchvision.ops.roi_align', doubled_scale)
    out = tmp_path / 'mask_rcnn.onnx'
    out.write_text('an earlier export')
    assert export_tool.main(['--config', config, '--whole', '--checkpoint', checkpoint,
                             '--image', _toy_val_image(data), '--shape', '192x256',
                             '--out', str(out)]) == 1
    verdicts = dict((a, v) for a, v, _ in _reports(capsys.readouterr().out))
    assert verdicts["mmdet's predict"] == 'MISMATCH', verdicts
    assert out.read_text() == 'an earlier export'
    assert (tmp_path / 'mask_rcnn.invalid.onnx').stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize('config', ['mask_rcnn_efficientvit_m0', 'mask_rcnn_uniform_xs'])
def test_whole_mask_rcnn_export_of_each_family_matches_pytorch(config, tmp_path, capsys):
    """Random non-trivial weights (classifier sharpened: 100 detections reach the
    mask head), BN folded: ONNX Runtime finds the graph's detections (the graph's
    agreement with mmdet's predict is the trained test's: it does not depend on the
    backbone, which the graph calls as mmdet does)."""
    out = tmp_path / 'whole.onnx'
    assert export_tool.main(['--config', os.path.join(ROOT, 'configs', f'{config}.py'),
                             '--whole', '--fused', '--shape', '128x160',
                             '--out', str(out)]) == 0
    (against, verdict, count), = _reports(capsys.readouterr().out)
    assert (against, verdict) == ('PyTorch', 'ok') and int(count) == 100


@pytest.mark.slow
@pytest.mark.parametrize('height, width, holds', [(460, 460, True), (128, 160, False)])
def test_a_dynamic_export_of_a_windowed_backbone_holds_above_its_window(height, width, holds,
                                                                        tmp_path, capsys):
    """EfficientViT-M (windows of 7, 7 and 4 in this config) attends to a map that
    fits in one window whole, with the bias table of its size: a dynamic export
    holds across sizes where every stage's map is larger than its window (460x460
    and 532x500), not from a size where one fits (128x160) to one where it does
    not (200x200). The second size is checked, and a graph that fails there is
    set aside with a line saying why, not a crash."""
    out = tmp_path / 'whole.onnx'
    code = export_tool.main(['--config', os.path.join(ROOT, 'configs',
                                                      'retinanet_efficientvit_m0.py'),
                             '--whole', '--fused', '--dynamic', '--shape', f'{height}x{width}',
                             '--out', str(out)])
    printed = capsys.readouterr().out
    verdicts = re.findall(r'input \[1, 3, (\d+), (\d+)\], ONNX Runtime vs PyTorch: (ok|MISMATCH)',
                          printed)
    second = (str(height + 72), str(width + 40))
    if holds:
        assert code == 0 and verdicts == [(str(height), str(width), 'ok'), (*second, 'ok')]
        assert out.exists()
    else:
        assert code == 1 and verdicts == [(str(height), str(width), 'ok'), (*second, 'MISMATCH')]
        assert 'ONNX Runtime failed' in printed and 'larger than its window' in printed
        assert not out.exists() and (tmp_path / 'whole.invalid.onnx').exists()


@pytest.mark.slow
def test_a_dynamic_export_reads_each_levels_candidate_count_from_the_image(tmp_path, capsys):
    """The RPN's coarsest level has fewer anchors than nms_pre (18 at 128x160, 48 at
    200x200), so its top-k takes all of them: a count the graph must take from
    the shape (a constant 18 loses proposals at the second size; the trained toy
    image above does not show it, random weights with 100 detections do)."""
    out = tmp_path / 'whole.onnx'
    assert export_tool.main(['--config', os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py'),
                             '--whole', '--fused', '--dynamic', '--shape', '128x160',
                             '--out', str(out)]) == 0
    assert _reports(capsys.readouterr().out) == [('PyTorch', 'ok', '100')] * 2


@pytest.mark.slow
def test_an_image_without_detections_exports_and_matches(tmp_path, capsys):
    """No box clears score_thr: the mask head sees zero RoIs, in PyTorch and in
    ONNX Runtime alike, and the outputs are empty, not an error."""
    out = tmp_path / 'whole.onnx'
    assert export_tool.main(['--config', os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py'),
                             '--whole', '--shape', '128x160', '--out', str(out),
                             '--cfg-options', 'model.test_cfg.rcnn.score_thr=1.0']) == 0
    assert _reports(capsys.readouterr().out) == [('PyTorch', 'ok', '0')]


@pytest.mark.slow
def test_random_weights_send_detections_through_the_mask_head():
    """A random box classifier spreads each RoI's softmax over the 81 classes (top
    scores near score_thr); sharpened, its top scores are those of a confident head,
    and max_per_img detections reach the mask head."""
    graph = build_target(config=os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py'),
                         whole=True).model
    image = graph_module.noise_image(256, 320)
    with torch.no_grad():
        boxes, scores, _, masks = graph(image)
        assert masks.shape == (100, 28, 28) and scores.min() > 0.5
        graph.sharpen_random_classifier_(factor=0.1)  # undo it
        assert (graph(image)[1] < 0.1).all()  # none, or only weak ones


def test_export_refusals_leave_no_file(tmp_path, capsys):
    config = os.path.join(ROOT, 'configs', 'retinanet_shvit_s1.py')
    out = tmp_path / 'whole.onnx'
    assert export_tool.main(['--config', config, '--whole', '--shape', '128',
                             '--out', str(out), '--opset', '15']) == 2
    assert 'opset 16 or later' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_tool.main(['--config', config, '--whole', '--batch', '2', '--out', str(out)])
    assert 'one image' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unsupported_detectors_are_named():
    from mmengine.config import Config

    from efficientvit_det.mmlab.scope import build_model_from_config
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'retinanet_shvit_s1.py'))
    model = build_model_from_config(cfg)
    model.bbox_head.use_sigmoid_cls = False
    with pytest.raises(ExportUnsupported, match='^RetinaNet: whole-detector graphs cover'):
        DetectorGraph(model)
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py'))
    model = build_model_from_config(cfg)
    model.roi_head.mask_head.class_agnostic = True
    with pytest.raises(ExportUnsupported, match='^MaskRCNN: .*class-specific'):
        DetectorGraph(model)


def test_detection_matching_pairs_by_label_and_box_in_any_order():
    boxes = torch.tensor([[0., 0, 10, 10], [20, 20, 40, 40], [5, 5, 15, 15]])
    expected = dict(boxes=boxes, scores=torch.tensor([.9, .8, .7]),
                    labels=torch.tensor([1, 2, 1]))
    shuffled = {k: v[[2, 0, 1]] for k, v in expected.items()}
    assert match_detections(expected, shuffled, (50, 50)) == dict(
        expected=3, found=3, unpaired=0, max_box_diff_px=0.0, max_score_diff=0.0)
    moved = dict(expected, boxes=boxes + torch.tensor([[0.], [0], [1]]))
    assert match_detections(expected, moved, (50, 50))['max_box_diff_px'] == 1.0
    relabelled = dict(expected, labels=torch.tensor([1, 3, 1]))
    assert match_detections(expected, relabelled, (50, 50))['unpaired'] == 2
    masks = torch.zeros(3, 50, 50, dtype=torch.bool)
    masks[:, :10, :10] = True
    thinner = masks.clone()
    thinner[0, :, 9] = False
    iou = match_detections(dict(expected, masks=masks), dict(expected, masks=thinner),
                           (50, 50))['min_mask_iou']
    assert iou == pytest.approx(0.9) and iou < AGREEMENT['min_mask_iou']
    probabilities = torch.full((3, 28, 28), 0.7)
    nudged = probabilities.clone()
    nudged[1, 3, 3] = 0.5
    assert match_detections(dict(expected, mask_probs=probabilities),
                            dict(expected, mask_probs=nudged),
                            (50, 50))['max_mask_prob_diff'] == pytest.approx(0.2)


@pytest.mark.slow
def test_stages_add_up_to_the_whole_and_name_the_backbone_share(capsys, monkeypatch):
    """The eager row of a whole detector carries per-stage medians that add up to
    the whole's median (the same work, timed piecewise). On a clock that advances
    only by a known cost per stage, so the bookkeeping is checked, not this
    machine's noise (the measured sums are in the benchmark tables)."""
    costs_ms = {'backbone': 2.0, 'neck': 3.0, 'dense head + NMS': 5.0,
                'box head + NMS': 7.0, 'mask head': 11.0}
    clock = [0.0]
    monkeypatch.setattr(import_module('efficientvit_det.benchmark.measure'), 'time',
                        types.SimpleNamespace(perf_counter=lambda: clock[0]))
    real_stages = DetectorGraph.stages

    def costed_stages(graph):
        def costed(name, stage):
            def run(state):
                clock[0] += costs_ms[name] / 1e3
                return stage(state)
            return name, run
        return [costed(name, stage) for name, stage in real_stages(graph)]
    monkeypatch.setattr(DetectorGraph, 'stages', costed_stages)
    monkeypatch.setattr(grid, 'matmul_gflops', lambda **_: 1.0)  # it times on the clock
    # cheap forwards (the clock is fake): the toy config, 5 detections to the mask head
    row, = tool.main(['--config', TOY_MASK_RCNN, '--whole', '--shape', '128x160',
                      '--iters', '2', '--warmup', '0', '--cfg-options',
                      'model.test_cfg.rcnn.max_per_img=5'])
    assert row['stages_ms'] == pytest.approx(costs_ms)
    assert list(row['stages_ms']) == list(costs_ms)
    assert row['median_ms'] == pytest.approx(sum(costs_ms.values()))
    assert row['backbone_share'] == pytest.approx(2 / 28, abs=1e-3)
    assert re.search(r'sum of stages +28\.00 ms \(the whole, timed as one: 28\.00 ms\)',
                     capsys.readouterr().out)


@pytest.mark.slow
def test_a_deployment_test_cfg_reaches_the_graph(capsys):
    """--cfg-options sets the RPN's proposal count the box head sees; a malformed
    option is one clear line."""
    config = os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py')
    for options, most in ((['model.test_cfg.rpn.max_per_img=30'], 30),
                          (['model.test_cfg.rpn.nms_pre=4'], 4 * 5)):  # 5 levels
        graph = build_target(config=config, whole=True, cfg_options=cfg_options(options)).model
        with torch.no_grad():
            state = graph_module.noise_image(128, 160)
            for _, stage in graph.stages()[:3]:
                state = stage(state)
        assert 0 < state[1].shape[0] <= most, options
    with pytest.raises(SystemExit):
        tool.main(['--config', config, '--whole', '--cfg-options', 'max_per_img'])
    assert 'expected KEY=VALUE' in capsys.readouterr().err
