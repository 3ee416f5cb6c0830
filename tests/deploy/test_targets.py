"""What is measured and exported: built one way, whatever the model, and asked
(example input, output check, stages, names) instead of tested for its type."""
import os
import re

import pytest
import torch

from efficientvit_det.deploy.targets import DetectorTarget, Target, build_target
from tests.support import ROOT


def test_a_configs_backbone_is_built_without_fetching_its_pretrained_weights(monkeypatch):
    """configs/mask_rcnn_fastvit_sa12.py asks timm for hub weights (pretrained=True);
    timing or exporting its backbone must not fetch them (offline, that ended in a
    huggingface traceback): the backbone and the whole model are built the same way."""
    import timm
    asked = []
    real = timm.create_model

    def create_model(name, *args, **kwargs):
        asked.append(kwargs.get('pretrained'))
        return real(name, *args, **dict(kwargs, pretrained=False))
    monkeypatch.setattr(timm, 'create_model', create_model)
    config = os.path.join(ROOT, 'configs', 'mask_rcnn_fastvit_sa12.py')
    backbone = build_target(config=config)
    whole = build_target(config=config, whole=True)
    assert asked == [False, False]
    assert (type(backbone), backbone.kind, backbone.name) == \
        (Target, 'backbone', 'mask_rcnn_fastvit_sa12:backbone')
    assert type(whole) is DetectorTarget and not whole.takes_batches


def test_targets_say_what_differs_between_them():
    backbone = build_target(backbone='shvit_s1')
    assert backbone.takes_batches and backbone.output_names is None and backbone.stages() is None
    assert tuple(backbone.example(2, 64, 96).shape) == (2, 3, 64, 96)
    detector = build_target(config=os.path.join(ROOT, 'configs', 'retinanet_shvit_s1.py'),
                            whole=True)
    assert detector.output_names == ['boxes', 'scores', 'labels']
    assert [name for name, _ in detector.stages()] == ['backbone', 'neck', 'dense head + NMS']
    image = detector.example(4, 96, 128)  # one image, pixels: the batch is not asked
    assert tuple(image.shape) == (1, 3, 96, 128) and image.max() > 1
    with torch.no_grad():
        outputs = detector.model(image)
    assert detector.disagreement(outputs, outputs, 'fp32', (96, 128)) == (None, None)
    shifted = (outputs[0] + 5, *outputs[1:])
    if len(outputs[0]):
        assert 'detections differ' in detector.disagreement(outputs, shifted, 'fp32',
                                                            (96, 128))[1]


@pytest.mark.slow
def test_the_detector_graph_keeps_no_state_between_stages():
    """Everything a stage needs arrives in its input: two images of other sizes run
    stage by stage, interleaved, give what each gives alone."""
    graph = build_target(config=os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py'),
                         whole=True).model
    small = torch.rand(1, 3, 96, 128) * 255
    large = torch.rand(1, 3, 160, 224) * 255
    with torch.no_grad():
        alone = [graph(small), graph(large)]
        states = [small, large]
        for _, stage in graph.stages():
            states = [stage(state) for state in states]
    before = set(vars(graph))
    for expected, got in zip(alone, states):
        for a, b in zip(expected, got):
            assert torch.equal(a, b)
    assert set(vars(graph)) == before
    with pytest.raises(ValueError, match='one image'):
        graph(torch.rand(2, 3, 96, 128))


def test_the_memory_bound_is_the_largest_tensor_a_real_run_makes():
    """The meta-device run (no data) finds the same largest tensor as a real run."""
    from efficientvit_det.deploy.memory import _LargestTensor, largest_tensor_bytes
    for name in ('shvit_s1', 'efficientvit_m0', 'uniform_xs'):
        model = build_target(backbone=name).model
        real = _LargestTensor()
        with torch.no_grad(), real:
            model(torch.randn(1, 3, 128, 96))
        assert largest_tensor_bytes(model, (1, 3, 128, 96)) == real.largest > 0, name


@pytest.mark.parametrize('argv', [
    ['--backbone', 'shvit_s1'],
    ['--config', os.path.join(ROOT, 'configs', 'mask_rcnn_shvit_s1.py'), '--whole']],
    ids=['backbone', 'whole_detector'])
def test_a_size_that_cannot_fit_is_refused_before_anything_of_it_is_allocated(argv, tmp_path):
    """At 20000x20000 SHViT's global attention alone makes a 568 GiB tensor: the export
    and the latency tool refuse it in one line, before allocating the input (a 4.5 GiB
    tensor for the input alone), and write nothing."""
    from efficientvit_det.cli import benchmark_latency, export_onnx
    from efficientvit_det.cli.common import run
    name = 'shvit_s1' if '--backbone' in argv else 'mask_rcnn_shvit_s1'
    for tool, extra in ((export_onnx, ['--out', str(tmp_path / 'big.onnx')]),
                        (benchmark_latency, ['--out', str(tmp_path / 'timed')])):
        with pytest.raises(SystemExit) as refused:
            run(lambda: tool.main(argv + ['--shape', '20000x20000'] + extra))
        assert re.fullmatch(rf'error: {name} at input 1x3x20000x20000 makes a tensor of 568\.4 '
                            r'GiB, more than the [\d.]+ GiB free on cpu: choose a smaller '
                            r'--shape \(or --batch\)', str(refused.value.code)), refused.value.code
    assert not os.listdir(tmp_path)


def test_a_broadcast_view_is_not_counted_as_memory():
    """``expand`` (an attention bias broadcast over a batch) allocates nothing: the
    bound counts storages, so such a view does not refuse a size that fits."""
    from efficientvit_det.deploy.memory import largest_tensor_bytes

    class Broadcast(torch.nn.Module):
        def forward(self, x):
            return x.expand(10 ** 6, *x.shape[1:])

    assert largest_tensor_bytes(Broadcast(), (1, 3, 64, 64)) == 3 * 64 * 64 * 4
