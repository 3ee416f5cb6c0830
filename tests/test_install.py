"""The installed stack: compiled mmcv ops, the versions, the backbones without OpenMMLab."""
import os
import subprocess
import sys

import pytest
import torch

from tests.support import ROOT


def test_mmcv_ops_run():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))

    feature = torch.arange(16, dtype=torch.float).view(1, 1, 4, 4)
    roi = torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float)  # the whole map, pixel-centred
    pooled = RoIAlign((1, 1), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feature, roi)
    assert pooled.item() == pytest.approx(feature.mean().item(), rel=1e-5)


def test_openmmlab_stack_and_timm_import_together():
    import mmdet
    import mmseg
    import timm
    import efficientvit_det
    assert mmdet.__version__ == '3.3.0' and mmseg.__version__ == '1.2.2'
    from packaging.version import Version
    assert Version(timm.__version__) >= Version('1.0.16')  # as strings, '1.0.9' > '1.0.16'
    assert set(efficientvit_det.REGISTERED_SCOPES) == {'mmdet', 'mmseg'}


def test_models_import_without_openmmlab():
    """The backbone package must import where only torch is installed."""
    code = (
        'import sys\n'
        'for name in ("mmdet", "mmseg", "mmcv", "mmengine"):\n'
        '    sys.modules[name] = None  # any import of them now raises ImportError\n'
        'import torch\n'
        'from efficientvit_det.models import build_backbone\n'
        'outs = build_backbone("uniform_xs").eval()(torch.randn(1, 3, 64, 64))\n'
        'assert len(outs) == 3\n'
        'print("ok")\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'


#: every private name of OpenMMLab's the package uses, and why there is no public route
PRIVATE_OPENMMLAB_API = {
    'mmengine.model.ImgDataPreprocessor._channel_conversion':
        'the whole-detector graph reorders channels as the preprocessor does; '
        'the flag is not exposed otherwise',
    'mmengine.hooks.CheckpointHook._save_checkpoint_with_step':
        'SafeCheckpointHook reorders the save (new file, pointer, then deletions)',
    'mmengine.infer.BaseInferencer._load_weights_to_model':
        'the inferencers load weights strictly; this is where weights go in',
}
#: the versions these names were read from (setup.py pins them)
PINNED = {'mmengine': '0.10.7', 'mmdet': '3.3.0', 'mmseg': '1.2.2', 'mmcv': '2.1.0'}


def test_private_openmmlab_names_exist_in_the_pinned_versions():
    import importlib
    from mmengine.model import ImgDataPreprocessor
    setup = open(os.path.join(ROOT, 'setup.py')).read()
    for package, version in PINNED.items():
        assert importlib.import_module(package).__version__ == version
        if package != 'mmcv':  # mmcv: tools/install.sh
            name = 'mmsegmentation' if package == 'mmseg' else package
            assert f"'{name}=={version}'" in setup
    for dotted in PRIVATE_OPENMMLAB_API:
        module, owner, attribute = dotted.rsplit('.', 2)
        cls = getattr(importlib.import_module(module), owner)
        if cls is ImgDataPreprocessor:
            assert hasattr(cls(bgr_to_rgb=True), attribute), dotted  # set in __init__
        else:
            assert hasattr(cls, attribute), dotted
