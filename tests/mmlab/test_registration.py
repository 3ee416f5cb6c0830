"""Importing the package adds our classes and changes nothing of OpenMMLab's; what the
patches of old did is now asked for by name (schemes, transform, hooks)."""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from efficientvit_det.mmlab.registration import MODEL_CLASSES

#: Run in a fresh interpreter: everything OpenMMLab holds that an import could
#: replace, before and after ``import efficientvit_det``; and a stock mmdet detector
#: built and loaded from a stock checkpoint on either side of the import.
SNAPSHOT = r'''
import json, sys
import torch
import mmcv.transforms  # noqa: F401  (mmcv's transforms in the root registry)
import mmdet.registry, mmseg.registry, mmengine.registry
from mmengine.config import Config
from mmengine.fileio.backends import backends, prefix_to_backends
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

NAMES = ('MODELS', 'TRANSFORMS', 'HOOKS', 'METRICS', 'DATASETS', 'VISUALIZERS',
         'OPTIM_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'LOOPS', 'RUNNERS', 'TASK_UTILS')


def snapshot():
    found = {}
    for scope, module in (('mmengine', mmengine.registry), ('mmdet', mmdet.registry),
                          ('mmseg', mmseg.registry)):
        for name in NAMES:
            registry = getattr(module, name, None)
            if registry is None:
                continue
            registry.import_from_location()
            found[f'{scope} {name} build function'] = id(registry.build_func)
            for key, obj in registry.module_dict.items():
                found[f'{scope} {name} {key}'] = id(obj)
    for prefix, loader in CheckpointLoader._schemes.items():  # no public listing exists
        found[f'checkpoint scheme {prefix!r}'] = id(loader)
    for name, backend in backends.items():
        found[f'file backend {name}'] = id(backend)
    for prefix, backend in prefix_to_backends.items():
        found[f'file prefix {prefix}'] = id(backend)
    found['torch.load'] = id(torch.load)
    return found


def stock_detector(path):
    cfg = Config.fromfile(sys.argv[1])
    cfg.model.backbone.init_cfg = None  # no torchvision download
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = mmdet.registry.MODELS.build(cfg.model)
    load_checkpoint(model, path, strict=True)
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        outputs = model.eval()(x, mode='tensor')
    return type(model).__qualname__, [o.sum().item() for level in outputs for o in level]


def save_stock_checkpoint(path):
    cfg = Config.fromfile(sys.argv[1])
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = mmdet.registry.MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 12}}, path)


save_stock_checkpoint(sys.argv[2])
before, stock_before = snapshot(), stock_detector(sys.argv[2])
import efficientvit_det  # noqa: F401
after, stock_after = snapshot(), stock_detector(sys.argv[2])
print(json.dumps(dict(changed=sorted(k for k in before if after.get(k) != before[k]),
                      added=sorted(k for k in after if k not in before),
                      stock_same=stock_before == stock_after, stock=stock_after)))
'''

#: everything the import may add, and nothing else
OURS = ({f'{scope} MODELS {name}' for scope in ('mmdet', 'mmseg') for name in MODEL_CLASSES}
        | {'mmdet TRANSFORMS LoadImageOrSkip', 'mmseg TRANSFORMS LoadImageOrSkip',
           'mmseg METRICS ClassIoUMetric', "checkpoint scheme 'release:'",
           "checkpoint scheme 'safe:'", 'file backend atomic_local'}
        | {f'mmengine HOOKS {hook}' for hook in ('SafeCheckpointHook', 'RNGStateHook',
                                                 'RankConsistencyHook', 'StrictLoadHook',
                                                 'FiniteLossHook', 'PyramidStrideCheckHook')})


def test_import_adds_our_classes_and_replaces_nothing(tmp_path):
    import mmdet
    config = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', 'retinanet',
                          'retinanet_r50_fpn_1x_coco.py')
    result = subprocess.run([sys.executable, '-c', SNAPSHOT, config, str(tmp_path / 'r50.pth')],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['changed'] == []
    assert set(report['added']) == OURS
    # mmdet's own RetinaNet builds and loads a stock checkpoint as before the import
    assert report['stock_same'] and report['stock'][0] == 'RetinaNet'


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_every_registered_type_builds_in_both_scopes(scope):
    import importlib
    from mmengine.registry import DefaultScope
    examples = {
        'SHViT': dict(arch='s1'),
        'EfficientViT': dict(arch='m0'),
        'UniForm': dict(arch='xs'),
        'TransposedFPN': dict(in_channels=[64, 128, 192], out_channels=32, num_outs=5,
                              num_extra_trans_convs=2),
        'PyramidAdapter': dict(in_channels=[64, 128, 192], in_strides=[16, 32, 64],
                               out_channels=[32, 32], out_strides=[8, 32]),
        'TimmBackbone': dict(model_name='repvit_m1_1'),
    }
    registry = importlib.import_module(f'{scope}.registry').MODELS
    assert set(MODEL_CLASSES) == set(examples)  # a new type must get an example here
    for name, cls in MODEL_CLASSES.items():
        assert registry.get(name) is cls  # one class, both registries
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(dict(type=name, **examples[name]))
        assert type(model) is cls


def test_image_loaders_mmcvs_kept_ours_under_its_own_name():
    import mmcv.transforms
    import mmdet.registry
    import mmseg.registry
    from efficientvit_det.mmlab.transforms import LoadImageOrSkip
    for registry in (mmdet.registry.TRANSFORMS, mmseg.registry.TRANSFORMS):
        assert registry.get('LoadImageOrSkip') is LoadImageOrSkip
        assert registry.get('LoadImageFromFile') is mmcv.transforms.LoadImageFromFile


def test_a_second_registration_is_a_no_op_and_a_foreign_name_is_never_taken():
    from mmengine.registry import Registry
    from efficientvit_det.errors import EfficientVitDetError
    from efficientvit_det.mmlab import registration
    before = {name: registration.MODEL_CLASSES[name] for name in registration.MODEL_CLASSES}
    assert registration.register_all() == ['mmdet', 'mmseg']
    import mmdet.registry
    assert all(mmdet.registry.MODELS.get(n) is c for n, c in before.items())
    foreign = Registry('model', scope='elsewhere')

    @foreign.register_module(name='SHViT')
    class NotOurs:
        pass
    with pytest.raises(EfficientVitDetError, match="already has 'SHViT'"):
        registration._add(foreign, registration.MODEL_CLASSES['SHViT'], 'SHViT')
    assert foreign.get('SHViT') is NotOurs


# ----------------------------------------------------------------------------- the safe: scheme

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


def test_runner_checkpoint_resumes_through_the_safe_scheme(tmp_path):
    """torch's default ``weights_only`` loading refuses mmengine's runner checkpoints
    (``HistoryBuffer``); ``safe:`` (what ``tools/train.py --resume`` passes) reads
    them through the allow-list, and training continues exactly."""
    import inspect
    from efficientvit_det.checkpoints import load_checkpoint_file
    assert inspect.signature(torch.load).parameters['weights_only'].default in (None, True)

    uninterrupted = _runner(tmp_path / 'a', max_epochs=3)
    uninterrupted.train()

    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path / 'b', max_epochs=3, crash_after_epoch=2).train()
    checkpoint = str(tmp_path / 'b' / 'epoch_2.pth')
    saved = load_checkpoint_file(checkpoint)
    assert {'message_hub', 'optimizer', 'param_schedulers'} <= set(saved)

    resumed = _runner(tmp_path / 'c', max_epochs=3, resume_from=f'safe:{checkpoint}')
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

    marker = tmp_path / 'executed'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsCode(marker)}, evil)
    for load in (load_checkpoint_file,
                 lambda p: CheckpointLoader.load_checkpoint(f'safe:{p}', 'cpu')):
        with pytest.raises(UnsafeCheckpointError, match='posix.system|os.system'):
            load(str(evil))
    assert not marker.exists()

    sneaky = tmp_path / 'sneaky.pth'
    torch.save({'state_dict': {}, 'meta': _ReachesAround()}, sneaky)
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(HistoryBuffer, '__init__'\)"):
        load_checkpoint_file(str(sneaky))
