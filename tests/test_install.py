"""The installed stack: compiled mmcv ops, registration, safe checkpoint loading."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn


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


# one small config per registered type; a new type must be added here to be covered
EXAMPLE_CONFIGS = {
    'SHViT': dict(arch='s1'),
    'EfficientViT': dict(arch='m0'),
    'UniForm': dict(arch='xs'),
    'TransposedFPN': dict(in_channels=[64, 128, 192], out_channels=32, num_outs=5,
                          num_extra_trans_convs=2),
    'TimmBackbone': dict(model_name='repvit_m1_1'),
}


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_every_registered_type_builds_in_both_scopes(scope):
    import importlib
    from mmengine.registry import DefaultScope
    from efficientvit_det.registry import registered_modules
    registry = importlib.import_module(f'{scope}.registry').MODELS
    assert set(registered_modules()) == set(EXAMPLE_CONFIGS)
    for name, cls in registered_modules().items():
        assert registry.get(name) is cls  # one class, both registries
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(dict(type=name, **EXAMPLE_CONFIGS[name]))
        assert type(model) is cls


def test_image_loader_is_ours_in_both_scopes():
    """mmdet's and mmseg's pipelines name ``LoadImageFromFile``; both get ours (the
    one that names an unreadable file)."""
    import mmdet.registry
    import mmseg.registry
    from efficientvit_det.runtime import LoadImageFromFile
    assert mmdet.registry.TRANSFORMS.get('LoadImageFromFile') is LoadImageFromFile
    assert mmseg.registry.TRANSFORMS.get('LoadImageFromFile') is LoadImageFromFile


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


# ----------------------------------------------------------------------------- runner checkpoints

def _runner(work_dir, max_epochs, resume_from=None, crash_after_epoch=None):
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    class Regression(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, x, mode='loss'):
            return dict(loss=((self.linear(x) - x.sum(1, keepdim=True)) ** 2).mean())

    class Points(Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, index):
            return dict(x=torch.linspace(-1, 1, 4) * (index % 7 - 3))

    class Crash(Hook):
        """Dies after the checkpoint of an epoch is written, like a killed job."""
        priority = 'LOWEST'

        def after_train_epoch(self, runner):
            if runner.epoch + 1 == crash_after_epoch:  # runner.epoch counts from 0
                raise KeyboardInterrupt('simulated kill')

    class RecordStart(Hook):
        """Where training (re)starts: first iteration and the weights it starts from."""

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if not hasattr(runner, 'start'):
                runner.start = (runner.iter, {k: v.clone() for k, v in
                                              runner.model.state_dict().items()})

    torch.manual_seed(0)  # the model is built before the Runner seeds anything
    return Runner(
        model=Regression(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Points(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
                         dict(type='MultiStepLR', milestones=[2], by_epoch=True)],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0, deterministic=True),
        custom_hooks=[Crash(), RecordStart()],
        resume=resume_from is not None, load_from=resume_from)


def test_runner_checkpoint_resumes_under_default_safe_loading(tmp_path):
    import efficientvit_det  # noqa: F401  (installs the allow-listed loader)
    import inspect
    assert inspect.signature(torch.load).parameters['weights_only'].default in (None, True)

    uninterrupted = _runner(tmp_path / 'a', max_epochs=3)
    uninterrupted.train()

    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path / 'b', max_epochs=3, crash_after_epoch=2).train()
    checkpoint = str(tmp_path / 'b' / 'epoch_2.pth')
    saved = torch.load(checkpoint)  # torch's default (weights_only) with our allow-list
    assert {'message_hub', 'optimizer', 'param_schedulers'} <= set(saved)

    resumed = _runner(tmp_path / 'c', max_epochs=3, resume_from=checkpoint)
    resumed.train()
    start_iter, start_weights = resumed.start
    assert start_iter == saved['meta']['iter'] == 8
    for key, value in start_weights.items():
        assert torch.equal(value, saved['state_dict'][key])
    for (key, a), b in zip(uninterrupted.model.state_dict().items(),
                           resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key


class _RunsCode:
    """Unpickling this would run ``touch`` through os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


class _ReachesAround:
    """A getattr chain from an allowed class: must not resolve."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_code_carrying_pickles_are_refused(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    from efficientvit_det.checkpoints import UnsafeCheckpointError, load_checkpoint_file
    import efficientvit_det  # noqa: F401

    marker = tmp_path / 'executed'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsCode(marker)}, evil)
    for load in (load_checkpoint_file, lambda p: CheckpointLoader.load_checkpoint(p, 'cpu')):
        with pytest.raises(UnsafeCheckpointError, match='posix.system|os.system'):
            load(str(evil))
    assert not marker.exists()

    sneaky = tmp_path / 'sneaky.pth'
    torch.save({'state_dict': {}, 'meta': _ReachesAround()}, sneaky)
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(HistoryBuffer, '__init__'\)"):
        load_checkpoint_file(str(sneaky))
