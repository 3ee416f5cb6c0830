"""Runtime behaviour: bad data, atomic checkpoints, SIGKILL + resume, 2-rank DDP on CPU."""
import glob
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from efficientvit_det.checkpoints import load_checkpoint_file
from efficientvit_det.cli import train
from efficientvit_det.cli.common import run
from efficientvit_det.errors import (ConfigOptionError, DatasetError, RunCompleteError,
                                     WorkDirInUseError)
from efficientvit_det.mmlab.datasets import check_coco_annotations
from efficientvit_det.mmlab.hooks import AtomicLocalBackend
from tests.support import CONFIGS, ROOT, TOY_MASK_RCNN as TOY_CONFIG, toy_options
PYTHON = sys.executable


@pytest.fixture()
def logged():
    """Messages logged through mmengine's current logger during the test."""
    from mmengine.logging import MMLogger
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def _edit(ann_file, change):
    data = json.load(open(ann_file))
    change(data)
    json.dump(data, open(ann_file, 'w'))


# ----------------------------------------------------------------------------- bad data

def test_consistent_toy_annotations_pass(toy_coco):
    check_coco_annotations(str(toy_coco / 'annotations/instances_train.json'), str(toy_coco / 'train'),
                           'train')


def test_unknown_category_is_named(toy_coco):
    ann = str(toy_coco / 'annotations/instances_train.json')
    _edit(ann, lambda d: d['annotations'][0].update(category_id=42))
    with pytest.raises(DatasetError, match='category_id=42'):
        check_coco_annotations(ann, str(toy_coco / 'train'), 'train')


def test_empty_annotation_list_is_an_error(toy_coco):
    ann = str(toy_coco / 'annotations/instances_val.json')
    _edit(ann, lambda d: d.update(annotations=[]))
    with pytest.raises(DatasetError, match='empty "annotations"'):
        check_coco_annotations(ann, str(toy_coco / 'val'), 'val')


def test_missing_image_file_is_named(toy_coco):
    os.remove(toy_coco / 'train' / 'train_00002.jpg')
    with pytest.raises(DatasetError, match='train_00002.jpg'):
        check_coco_annotations(str(toy_coco / 'annotations/instances_train.json'),
                               str(toy_coco / 'train'), 'train')


def test_annotation_pointing_at_unknown_image_is_named(toy_coco):
    ann = str(toy_coco / 'annotations/instances_train.json')
    _edit(ann, lambda d: d['annotations'][0].update(image_id=999))
    with pytest.raises(DatasetError, match='image_id=999'):
        check_coco_annotations(ann, str(toy_coco / 'train'), 'train')


def test_an_image_id_listed_twice_is_named(toy_coco):
    """pycocotools would pair the first image's ground truth with the second file
    and never evaluate the first, without a word."""
    ann = str(toy_coco / 'annotations/instances_val.json')
    _edit(ann, lambda d: d['images'][1].update(id=d['images'][0]['id']))
    with pytest.raises(DatasetError, match=r'image id\(s\) \[1\] listed more than once'):
        check_coco_annotations(ann, str(toy_coco / 'val'), 'val')


@pytest.mark.slow
def test_train_tool_reports_bad_annotations_before_training(toy_coco, tmp_path):
    ann = str(toy_coco / 'annotations/instances_train.json')
    _edit(ann, lambda d: d['annotations'][0].update(category_id=42))
    result = subprocess.run(
        [PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(tmp_path / 'w'),
         '--cfg-options', *toy_options(toy_coco)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert 'error:' in result.stderr and 'category_id=42' in result.stderr
    assert 'Traceback' not in result.stderr


def _image_loader(**options):
    """The loader our training pipelines name, built the way mmdet's datasets build it."""
    from mmdet.registry import TRANSFORMS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return TRANSFORMS.build(dict(type='LoadImageOrSkip', **options))


@pytest.mark.parametrize('content', [b'', b'not a jpeg at all'], ids=['zero_bytes', 'corrupt'])
def test_unreadable_image_is_skipped_in_training_and_named_otherwise(toy_coco, logged, content):
    path = toy_coco / 'train' / 'train_00001.jpg'
    path.write_bytes(content)
    results = dict(img_path=str(path))
    assert _image_loader()(dict(results)) is None
    assert f'cannot read image {path}' in ' '.join(logged)
    named = 'train_00001.jpg' + (r' \(empty file' if not content else '')
    with pytest.raises(IOError, match=named):
        _image_loader(skip=False)(dict(results))
    good = _image_loader()(dict(img_path=str(toy_coco / 'train' / 'train_00000.jpg')))
    assert good['img'].shape == (192, 256, 3)


def test_mmdet_inferencer_recognises_the_toy_pipeline():
    """mmdet's inferencers look for ``LoadImageFromFile`` by name in the test pipeline."""
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=TOY_CONFIG, weights=None, device='cpu', show_progress=False)
    result = inferencer(np.zeros((64, 64, 3), np.uint8), return_datasamples=True)
    assert len(result['predictions']) == 1


def test_degenerate_annotations_are_reported_by_id(toy_coco, logged):
    ann = toy_coco / 'annotations/instances_train.json'
    anns = json.load(open(ann))['annotations']
    ids = [a['id'] for a in anns[:4]]

    def degenerate(data):
        first, second, third = data['annotations'][:3]
        first['bbox'][2] = 0.5                                      # under 1 px: dropped
        second['bbox'] = [5000, 5000, 10, 10]                       # outside: dropped
        third['bbox'][0] = -5.0                                     # beyond: clipped
    _edit(ann, degenerate)
    check_coco_annotations(str(ann), str(toy_coco / 'train'), 'train', with_masks=True)
    text = '\n'.join(logged)
    assert f'1 annotation(s) have a box under 1 px or zero area: mmdet drops them (ids {ids[0]})' \
        in text
    assert f'lie outside their image: mmdet drops them (ids {ids[1]})' in text
    assert f'their boxes are clipped to it (ids {ids[2]})' in text

    _edit(ann, lambda data: data['annotations'][3].update(segmentation=[]))
    check_coco_annotations(str(ann), str(toy_coco / 'train'), 'train', with_masks=False)  # boxes only
    with pytest.raises(DatasetError, match=f'annotation {ids[3]} .* empty "segmentation"'):
        check_coco_annotations(str(ann), str(toy_coco / 'train'), 'train', with_masks=True)
    _edit(ann, lambda data: data['annotations'][3].pop('bbox'))
    with pytest.raises(DatasetError, match=f'annotation {ids[3]} .* no "bbox"'):
        check_coco_annotations(str(ann), str(toy_coco / 'train'), 'train')
    _edit(ann, lambda data: data['annotations'][3].update(ignore=True))  # mmdet skips it first
    check_coco_annotations(str(ann), str(toy_coco / 'train'), 'train')
    _edit(ann, lambda data: data['images'][0].pop('width'))
    with pytest.raises(DatasetError, match='has no "width" / "height"'):
        check_coco_annotations(str(ann), str(toy_coco / 'train'), 'train')


def test_empty_image_files_are_named_before_any_worker(toy_coco, logged):
    (toy_coco / 'train' / 'train_00002.jpg').write_bytes(b'')
    check_coco_annotations(str(toy_coco / 'annotations/instances_train.json'), str(toy_coco / 'train'),
                           'train')
    assert 'train_00002.jpg' in logged[-1] and 'skipped in training' in logged[-1]
    (toy_coco / 'val' / 'val_00001.jpg').write_bytes(b'')
    with pytest.raises(DatasetError, match='val_00001.jpg'):
        check_coco_annotations(str(toy_coco / 'annotations/instances_val.json'), str(toy_coco / 'val'),
                               'val')


@pytest.mark.parametrize('option, message', [
    ('default_hooks.checkpoint.intervall=1',
     "default_hooks.checkpoint: unknown option 'intervall' for SafeCheckpointHook (did you "
     "mean 'interval'?)"),
    ('optim_wrapper.optimizer.weight_decy=0.1',
     "optim_wrapper.optimizer: unknown option 'weight_decy' for AdamW"),
    ('train_dataloader.dataset.filter_cgf=None',
     "train_dataloader.dataset: unknown option 'filter_cgf' for CocoDataset"),
    ('train_dataloader.dataset.pipeline.2.scal=1',
     "train_dataloader.dataset.pipeline[2]: unknown option 'scal' for Resize"),
    ('param_scheduler.0.begn=0', "param_scheduler[0]: unknown option 'begn' for LinearLR"),
    ('optim_wrapper.paramwise_cfg.norm_decay=0',
     "optim_wrapper.paramwise_cfg: unknown option 'norm_decay'"),
    ('val_evaluator.metrc=bbox', "val_evaluator: unknown option 'metrc' for CocoMetric"),
    ('train_dataloader.num_worker=1', "train_dataloader: unknown option 'num_worker' for torch "
     "DataLoader (did you mean 'num_workers'?)"),
    ('default_hooks.checkpoint.filename=x.pth',  # would collide in Runner.save_checkpoint
     "default_hooks.checkpoint: unknown option 'filename'"),
    ('custom_hooks.0.foo=1', "custom_hooks[0]: unknown option 'foo' for RNGStateHook; it accepts: "
     'priority'),
])
def test_unknown_config_option_stops_training_before_it_starts(toy_coco, tmp_path, monkeypatch,
                                                               option, message):
    started = []
    monkeypatch.setattr(train, 'build_runner', lambda cfg: started.append(cfg))
    with pytest.raises(ConfigOptionError) as err:
        train.train_main([TOY_CONFIG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                          *toy_options(toy_coco), option])
    assert message in str(err.value)
    assert not started


@pytest.mark.slow
def test_train_tool_names_an_unknown_option_in_one_line(toy_coco, tmp_path):
    result = subprocess.run(
        [PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
         *toy_options(toy_coco), 'default_hooks.checkpoint.intervall=1'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: default_hooks.checkpoint: unknown option 'intervall'")
    assert not (tmp_path / 'w').exists() or not list((tmp_path / 'w').rglob('*.pth'))


@pytest.mark.parametrize('package, config', [
    ('mmdet', 'yolox/yolox_s_8xb8-300e_coco.py'),        # hooks with a priority
    ('mmdet', 'ssd/ssd512_coco.py'),                      # RepeatDataset, CheckInvalidLossHook
    ('mmdet', 'rtmdet/rtmdet_s_8xb32-300e_coco.py'),      # EMA hook, pipeline switch hook
    ('mmdet', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
    ('mmseg', 'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'),
])
def test_option_check_accepts_the_frameworks_own_configs(package, config):
    """No false alarms on what mmdet / mmseg ship (a sample of 195 of their configs
    passed when this was written, except one whose evaluator really is broken)."""
    import importlib
    from mmengine.config import Config
    from efficientvit_det.mmlab.config_options import check_config_options
    root = os.path.join(os.path.dirname(importlib.import_module(package).__file__), '.mim',
                        'configs')
    check_config_options(Config.fromfile(os.path.join(root, config)))


def test_option_check_follows_wrappers_scopes_and_stops_where_it_cannot_follow():
    from mmengine.config import Config
    from efficientvit_det.errors import ConfigOptionError
    from efficientvit_det.mmlab.config_options import check_config_options
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        cfg.train_dataloader.dataset, filter_cgf=None))
    with pytest.raises(ConfigOptionError, match="train_dataloader.dataset.dataset: unknown option "
                       "'filter_cgf' for CocoDataset"):
        check_config_options(cfg)
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.train_dataloader.dataset.pipeline[1] = dict(
        type='LoadAnnotations', _scope_='mmseg', reduce_zero_label=True)  # mmseg's, not mmdet's
    check_config_options(cfg)
    cfg.train_dataloader.dataset.pipeline[1]['with_mask'] = True  # mmdet's option only
    with pytest.raises(ConfigOptionError, match="pipeline\\[1\\]: unknown option 'with_mask'"):
        check_config_options(cfg)
    # **kwargs that leave OpenMMLab code (here: to the optimizer class it names) are not
    # followed, so its options are not judged
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.optim_wrapper.optimizer = dict(type='ZeroRedundancyOptimizer', optimizer_type='AdamW',
                                       lr=1e-3, weight_decay=0.05)
    check_config_options(cfg)


@pytest.mark.slow
def test_every_shipped_config_passes_the_option_check_and_carries_the_safe_runtime():
    """Each config (read once): no option its class does not take, and what README
    promises for every config: atomic checkpoints saved in a safe order, RNG states
    in checkpoints, strict loading of load_from / --resume, and unreadable training
    images skipped (our loader, by its own name) while test pipelines keep mmcv's
    loader, which mmdet's and mmseg's inferencers look for by name."""
    from mmengine.config import Config
    from efficientvit_det.mmlab.config_options import check_config_options
    assert len(CONFIGS) >= 50
    for config in CONFIGS:
        cfg = Config.fromfile(config)
        check_config_options(cfg)
        assert cfg.train_dataloader.dataset.pipeline[0].type == 'LoadImageOrSkip', config
        assert cfg.test_dataloader.dataset.pipeline[0].type == 'LoadImageFromFile', config
        checkpoint = cfg.default_hooks.checkpoint
        assert checkpoint.type == 'SafeCheckpointHook', config
        assert checkpoint.backend_args == dict(backend='atomic_local'), config
        hooks = {hook['type'] for hook in cfg.custom_hooks}
        assert {'RNGStateHook', 'StrictLoadHook', 'FiniteLossHook'} <= hooks, config


@pytest.mark.parametrize('ours, theirs', [
    ('mask_rcnn_shvit_s4.py', 'mmdet::_base_/datasets/coco_instance.py'),
    ('retinanet_uniform_l.py', 'mmdet::_base_/datasets/coco_detection.py'),
    ('fpn_efficientvit_m4_ade20k.py', 'mmseg::_base_/datasets/ade20k.py'),
    ('upernet_shvit_s4_ade20k.py', 'mmseg::_base_/datasets/ade20k.py'),
])
def test_our_training_pipelines_are_the_frameworks_but_for_the_loader(ours, theirs):
    """Our bases restate mmdet's / mmseg's training pipeline only to name our loader."""
    import importlib
    from mmengine.config import Config
    package, path = theirs.split('::')
    base = Config.fromfile(os.path.join(os.path.dirname(importlib.import_module(
        package).__file__), '.mim', 'configs', path))
    pipeline = Config.fromfile(os.path.join(ROOT, 'configs', ours)).train_dataloader.dataset.pipeline
    assert [t['type'] for t in pipeline[:1]] == ['LoadImageOrSkip']
    assert base.train_pipeline[0]['type'] == 'LoadImageFromFile'
    assert pipeline[1:] == base.train_pipeline[1:]


# ----------------------------------------------------------------------------- checkpoints

def test_atomic_backend_never_leaves_a_partial_file(tmp_path, monkeypatch):
    backend = AtomicLocalBackend()
    target = tmp_path / 'epoch_1.pth'
    backend.put(b'complete checkpoint', target)
    assert target.read_bytes() == b'complete checkpoint'

    def killed(*args):
        raise KeyboardInterrupt('killed while renaming')
    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'new bytes' * 1000, target)
    assert target.read_bytes() == b'complete checkpoint'  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']  # no partial left


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    """Checkpoints and results written through a temporary file are as readable as
    any new file (the umask decides), not private like the temporary file (0600)."""
    AtomicLocalBackend().put(b'checkpoint', tmp_path / 'epoch_1.pth')
    (tmp_path / 'plain').write_bytes(b'')
    mode = (tmp_path / 'plain').stat().st_mode & 0o777
    assert mode != 0o600 and (tmp_path / 'epoch_1.pth').stat().st_mode & 0o777 == mode


def short_run_options(toy_coco, epochs):
    # one non-persistent worker: mmengine re-seeds it every epoch, so augmentation
    # is reproducible across a resume; no validation to keep it short
    return toy_options(toy_coco, workers=1) + [
        'train_dataloader.batch_size=2', f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs + 1}', 'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'randomness.seed=0',
        'randomness.deterministic=True']


def _train(toy_coco, work_dir, epochs, extra=()):
    """A training process whose output goes to ``<work_dir>.<n>.log`` (a file: a
    pipe nobody reads would fill and stall it); returns (process, log path)."""
    log = f'{work_dir}.{len(glob.glob(f"{work_dir}.*.log"))}.log'
    process = subprocess.Popen(
        [PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(work_dir), *extra,
         '--cfg-options', *short_run_options(toy_coco, epochs)],
        cwd=ROOT, stdout=open(log, 'w'), stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'))  # two at once: 20 s/iteration, else 1.5
    return process, log


def _kill_job(process):
    """SIGKILL to the training process and its data-loader workers, as a scheduler
    kills a job (a worker outliving its main process would hold memory to the end)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # all gone already
        pass


def _tail(log):
    return open(log).read()[-3000:]


def _logged_losses(work_dir):
    """{iteration: loss} of each run logged in ``work_dir``, oldest run first."""
    runs = sorted(glob.glob(str(work_dir / '2*' / 'vis_data' / 'scalars.json')))
    return [{r['step']: r['loss'] for r in map(json.loads, open(path)) if 'loss' in r}
            for path in runs]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(toy_coco, tmp_path):
    """The resumed run must really resume: it starts after the checkpoint's iteration,
    its first iterations see the same data, augmentation and RoI sampling as the
    uninterrupted run (RNG states restored), and it leaves the earlier checkpoint
    as it was. A silent restart from scratch fails each of these."""
    epochs = 3
    reference, reference_log = _train(toy_coco, tmp_path / 'reference', epochs)
    killed, killed_log = _train(toy_coco, tmp_path / 'killed', epochs)
    deadline = time.time() + 300
    while not (tmp_path / 'killed' / 'epoch_1.pth').exists():  # kill mid-epoch 2
        assert killed.poll() is None and time.time() < deadline, _tail(killed_log)
        time.sleep(0.2)
    time.sleep(1.0)
    _kill_job(killed)
    killed.wait()
    assert not (tmp_path / 'killed' / f'epoch_{epochs}.pth').exists()
    leftovers = [p.name for p in (tmp_path / 'killed').iterdir() if '.partial' in p.name]
    assert not leftovers
    resume_from = max((tmp_path / 'killed').glob('epoch_*.pth'), key=lambda p: p.stat().st_mtime)
    before = resume_from.read_bytes()
    resumed_epoch = load_checkpoint_file(str(resume_from))['meta']['epoch']

    resumed, resumed_log = _train(toy_coco, tmp_path / 'killed', epochs, extra=['--resume'])
    assert resumed.wait(timeout=600) == 0, _tail(resumed_log)
    log = open(resumed_log).read()
    assert f'resuming from {resume_from}' in log
    assert f'resumed epoch: {resumed_epoch}' in log
    assert 'restored RNG states from the checkpoint' in log
    assert resume_from.read_bytes() == before  # not rewritten
    assert reference.wait(timeout=600) == 0, _tail(reference_log)

    expected = _logged_losses(tmp_path / 'reference')[0]
    continued = _logged_losses(tmp_path / 'killed')[-1]
    iters_per_epoch = len(expected) // epochs
    assert sorted(continued) == list(range(resumed_epoch * iters_per_epoch + 1,
                                           epochs * iters_per_epoch + 1))
    for step, loss in continued.items():  # the same batches, flips and RoI samples
        assert loss == pytest.approx(expected[step], rel=1e-4), step
    final_a = load_checkpoint_file(str(tmp_path / "reference" / f"epoch_{epochs}.pth"))
    final_b = load_checkpoint_file(str(tmp_path / "killed" / f"epoch_{epochs}.pth"))
    assert final_a['meta']['iter'] == final_b['meta']['iter']
    for key, value in final_a['state_dict'].items():
        assert torch.allclose(value, final_b['state_dict'][key], atol=1e-6), key


STALLED_SAVE = """
import sys, time
from efficientvit_det.cli.common import run
from efficientvit_det.cli.train import train_main
from efficientvit_det.fileio import atomic_path
from efficientvit_det.mmlab import hooks

write = hooks.AtomicLocalBackend._write

def stalled(filepath, obj, mode, encoding=None):
    \"\"\"Fault injection: the epoch-2 checkpoint is caught half-written.\"\"\"
    if not str(filepath).endswith('epoch_2.pth'):
        return write(filepath, obj, mode, encoding)
    with atomic_path(filepath) as partial, open(partial, mode) as f:
        f.write(obj[:len(obj) // 2])
        f.flush()
        print('writing', flush=True)
        time.sleep(300)

hooks.AtomicLocalBackend._write = staticmethod(stalled)
sys.argv[0] = 'tools/train.py'
run(train_main)
"""


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL], ids=['SIGTERM', 'SIGKILL'])
def test_kill_during_checkpoint_write_loses_nothing(toy_coco, tmp_path, signum):
    """With max_keep_ckpts=1 mmengine deletes epoch_1.pth before writing epoch_2.pth;
    a kill in that write must leave epoch_1.pth and a last_checkpoint naming it."""
    work_dir = tmp_path / 'work'
    options = short_run_options(toy_coco, epochs=2)
    options[options.index('default_hooks.checkpoint.max_keep_ckpts=-1')] = \
        'default_hooks.checkpoint.max_keep_ckpts=1'
    process = subprocess.Popen(
        [PYTHON, '-c', STALLED_SAVE, TOY_CONFIG, '--work-dir', str(work_dir),
         '--cfg-options', *options], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    line = process.stdout.readline()
    while line and line.strip() != 'writing':
        line = process.stdout.readline()
    assert line, process.stderr.read()[-3000:]
    partials = [p.name for p in work_dir.iterdir() if '.partial-' in p.name]
    assert partials and partials[0].startswith('epoch_2.pth.partial-')  # caught half-way
    process.send_signal(signum)
    try:
        assert process.wait(timeout=60) == (128 + signum if signum == signal.SIGTERM
                                            else -signum)
    finally:
        _kill_job(process)  # its workers

    left = sorted(p.name for p in work_dir.iterdir() if p.suffix == '.pth' or '.partial' in p.name)
    assert 'epoch_1.pth' in left and 'epoch_2.pth' not in left
    assert (work_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    assert load_checkpoint_file(str(work_dir / "epoch_1.pth"))["meta"]["epoch"] == 1  # complete
    if signum == signal.SIGTERM:  # exits through the cleanup
        assert left == ['epoch_1.pth']
        return
    assert left == ['epoch_1.pth', partials[0]]  # no cleanup survives SIGKILL...
    resumed = subprocess.run(
        [PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(work_dir), '--resume',
         '--cfg-options', *options], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert f'resuming from {work_dir / "epoch_1.pth"}' in output  # says which
    assert f'removed {work_dir / partials[0]}' in output  # ...so the next start cleans up
    assert 'resumed epoch: 1' in output
    assert sorted(p.name for p in work_dir.iterdir() if '.pth' in p.name) == ['epoch_2.pth']


def test_resume_finds_the_newest_complete_checkpoint(tmp_path):
    from efficientvit_det.errors import NothingToResumeError
    from efficientvit_det.mmlab.workdir import newest_complete_checkpoint
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    with pytest.raises(NothingToResumeError, match='holds no checkpoint'):
        newest_complete_checkpoint(str(work_dir))
    (work_dir / 'model_final.pth').write_bytes(b'x')  # a custom name: only the pointer knows
    (work_dir / 'last_checkpoint').write_text('elsewhere/model_final.pth')  # a moved work dir
    assert newest_complete_checkpoint(str(work_dir)) == str(work_dir / 'model_final.pth')
    for name in ('epoch_2.pth', 'epoch_10.pth', 'epoch_11.pth.partial-x1', 'best.pth'):
        (work_dir / name).write_bytes(b'x')
    # killed after epoch_10.pth was renamed into place, before the pointer moved on
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    assert newest_complete_checkpoint(str(work_dir)) == str(work_dir / 'epoch_10.pth')


def _free_port():
    with socket.socket() as probe:  # a fixed port fails when another run holds it
        probe.bind(('127.0.0.1', 0))
        return str(probe.getsockname()[1])


@pytest.mark.slow
def test_two_process_cpu_ddp_ranks_agree(toy_coco, tmp_path):
    env = dict(os.environ, PYTHON=PYTHON, PORT=_free_port(), OMP_NUM_THREADS='1')
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', TOY_CONFIG, '2', '--work-dir', str(tmp_path / 'ddp'),
         '--cfg-options', *toy_options(toy_coco), 'train_dataloader.batch_size=1',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=2'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / 'ddp' / 'rank_consistency.json'))
    assert report['ranks'] == 2 and report['agree'] is True


def test_sigterm_caught_by_a_librarys_bare_except_still_ends_as_sigterm(monkeypatch, capsys):
    """mmengine formats a config inside a bare ``except:`` and raises SyntaxError for
    whatever it caught: a SIGTERM while a runner is built (the demo's) ended as that
    SyntaxError's traceback. It ends as SIGTERM does: one line, exit 128 + 15. An
    error with no signal behind it keeps its traceback."""
    import mmengine.config.config as mmengine_config
    from mmengine.config import Config

    from efficientvit_det import fileio
    from efficientvit_det.cli import common

    def terminated_while_formatting(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this

    monkeypatch.setattr(mmengine_config, 'FormatCode', terminated_while_formatting)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            common.run(lambda: Config(dict(model=dict(type='X'))).pretty_text)
        assert stopped.value.code == 128 + signal.SIGTERM
        assert capsys.readouterr().err.strip() == f'stopped by signal {int(signal.SIGTERM)}'
        fileio._STOPPED_BY.clear()
        with pytest.raises(SyntaxError):  # no signal: mmengine's error, as it raised it
            monkeypatch.setattr(mmengine_config, 'FormatCode', lambda *a, **k: 1 / 0)
            common.run(lambda: Config(dict(model=dict(type='X'))).pretty_text)
    finally:
        signal.signal(signal.SIGTERM, previous)
        fileio._STOPPED_BY.clear()


def test_a_finished_run_leaves_its_process_group(monkeypatch):
    """Left to interpreter shutdown, gloo's threads abort a finished rank now and then
    (SIGABRT; torchrun then fails the job): the CLI ends the group itself."""
    import torch.distributed as dist
    from efficientvit_det.cli import common
    # the CLI's SIGTERM handler is for a tool's own process, not pytest's
    monkeypatch.setattr(common, 'exit_cleanly_on_sigterm', lambda: None)

    def main():
        dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
        tensor = torch.ones(2)
        dist.all_reduce(tensor)

    try:
        common.run(main)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


RANK_CHECK = """
import sys, torch, torch.distributed as dist
from types import SimpleNamespace
from efficientvit_det.mmlab.hooks import RankConsistencyHook
dist.init_process_group('gloo')
torch.manual_seed(0)
model = torch.nn.Linear(4, 4)
if dist.get_rank() == 1 and sys.argv[1] == 'diverge':
    with torch.no_grad():
        model.weight[0, 0] += 1e-4  # what a broken all-reduce would leave
try:
    RankConsistencyHook().after_train(SimpleNamespace(model=model, work_dir=sys.argv[2]))
    print('finished')
except RuntimeError as err:
    print(err)
dist.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize('weights', ['same', 'diverge'])
def test_rank_consistency_hook_raises_when_ranks_disagree(weights, tmp_path):
    """Two real gloo ranks: weights apart by 1e-4 in one element make every rank raise."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ranks = [subprocess.Popen(
        [PYTHON, '-c', RANK_CHECK, weights, str(tmp_path)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), WORLD_SIZE='2',
                 RANK=str(rank))) for rank in range(2)]
    outputs = [rank.communicate(timeout=120) for rank in ranks]
    report = json.load(open(tmp_path / 'rank_consistency.json'))
    assert report['ranks'] == 2
    if weights == 'same':
        assert report['agree'] is True
        assert [out.strip() for out, _ in outputs] == ['finished'] * 2, outputs
    else:
        assert report['agree'] is False
        assert [out.strip() for out, _ in outputs] == [
            f'rank {rank}: model weights differ across ranks' for rank in range(2)], outputs


# ----------------------------------------------------------------------------- strict loading

@pytest.mark.slow
@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_checkpoint_that_does_not_fit_stops_training_before_it_starts(toy_coco, tmp_path, resume):
    """mmengine alone would load the matching keys, warn, and train a half-random model."""
    from efficientvit_det.checkpoints import CheckpointMismatchError
    from efficientvit_det.cli.train import train_main
    from efficientvit_det.mmlab.scope import build_model_from_config
    model = build_model_from_config(TOY_CONFIG)
    state = {k: v for k, v in model.state_dict().items() if k != 'neck.lateral_convs.0.bias'}
    incomplete = tmp_path / 'incomplete.pth'
    torch.save({'state_dict': state, 'meta': {}}, incomplete)
    backbone_only = tmp_path / 'backbone.pth'
    torch.save({'state_dict': model.backbone.state_dict(), 'meta': {}}, backbone_only)
    cases = [(incomplete, 'missing keys: 1 [neck.lateral_convs.0.bias]'),
             (backbone_only, 'backbone-only checkpoint')]
    for checkpoint, message in cases:
        work_dir = tmp_path / f'work_{checkpoint.stem}'
        how = ['--resume', str(checkpoint)] if resume else []
        options = [] if resume else [f'load_from={checkpoint}']
        with pytest.raises(CheckpointMismatchError) as err:
            train_main([TOY_CONFIG, '--work-dir', str(work_dir), *how, '--cfg-options',
                        *toy_options(toy_coco), *options])
        assert message in str(err.value) and str(checkpoint) in str(err.value)
        assert not list(work_dir.rglob('*.pth'))  # not one iteration trained


@pytest.mark.slow
def test_a_diverging_training_stops_at_its_first_non_finite_loss_and_saves_nothing_of_it(
        toy_coco, tmp_path):
    """A learning rate far too high diverges for real (no NaN put in by hand): training
    stops at the first iteration whose loss is not finite, naming it and the terms;
    the weights of every iteration before it are saved, those of it are not."""
    from efficientvit_det.cli.train import train_main
    from efficientvit_det.errors import NonFiniteLossError
    work_dir = tmp_path / 'work'
    with pytest.raises(NonFiniteLossError) as err:
        train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--cfg-options',
                    *toy_options(toy_coco), 'optim_wrapper.optimizer.lr=1e6',
                    'train_dataloader.batch_size=1', 'train_cfg.max_epochs=4',
                    'default_hooks.checkpoint.by_epoch=False',
                    'default_hooks.checkpoint.interval=1', 'randomness.seed=0'])
    found = re.match(r'iteration (\d+): the loss went non-finite \((.+)\); stopped before '
                     r'saving these weights', str(err.value))
    assert found, str(err.value)
    iteration, terms = int(found.group(1)), dict(
        term.split('=') for term in found.group(2).split(', '))
    assert iteration > 1 and 'loss' in terms, str(err.value)
    assert all(value in ('nan', 'inf', '-inf') for value in terms.values()), terms
    saved = sorted(int(path.stem.split('_')[1]) for path in work_dir.glob('iter_*.pth'))
    assert saved == list(range(1, iteration)), (saved, iteration)


@pytest.mark.slow
def test_second_run_into_a_used_work_dir_is_refused(tmp_path, monkeypatch):
    """A new run would overwrite the earlier run's checkpoints and last_checkpoint."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth').write_bytes(b'earlier run')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    started = []
    monkeypatch.setattr(train, 'check_dataset_paths', lambda cfg, splits: None)
    runner = type('Runner', (), {'train': lambda self: None})
    monkeypatch.setattr(train, 'build_runner', lambda cfg: started.append(cfg) or runner())
    with pytest.raises(WorkDirInUseError) as err:
        train.train_main([TOY_CONFIG, '--work-dir', str(work_dir)])
    message = str(err.value)
    assert 'epoch_1.pth' in message and 'last_checkpoint' in message
    assert '--resume' in message and '--overwrite' in message and not started
    assert (work_dir / 'epoch_1.pth').read_bytes() == b'earlier run'
    train.train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--resume'])
    assert (work_dir / 'epoch_1.pth').exists()
    (work_dir / 'epoch_12.pth').write_bytes(b'earlier run, a longer schedule')
    (work_dir / 'notes.txt').write_text('mine')
    train.train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--overwrite'])
    assert len(started) == 2
    # replaced: no earlier checkpoint is left to pass for this run's newest one
    assert sorted(os.listdir(work_dir)) == ['notes.txt']
    (work_dir / 'epoch_1.pth').write_bytes(b'earlier run')
    # through the tool: one line, no traceback
    result = subprocess.run([PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(work_dir)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'error: ' + str(work_dir) + ' already holds checkpoints' in result.stderr


def test_a_running_training_holds_its_work_dir(tmp_path, monkeypatch):
    """A second training started into a work dir whose first has written no
    checkpoint yet stops in one line, writing nothing; the lock of a process that
    is gone (a killed run) is taken over, and a training releases its own."""
    from efficientvit_det.mmlab.workdir import LOCK_NAME, hold_work_dir
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    lock = work_dir / LOCK_NAME
    monkeypatch.setattr(train, 'check_dataset_paths', lambda cfg, splits: None)
    started = []
    runner = type('Runner', (), {'train': lambda self: started.append(lock.read_text())})
    monkeypatch.setattr(train, 'build_runner', lambda cfg: runner())
    first = subprocess.Popen([PYTHON, '-c', 'import time; time.sleep(120)'])
    try:
        lock.write_text(f'{first.pid} {socket.gethostname()}\n')
        with pytest.raises(SystemExit) as refused:  # what tools/train.py does
            run(lambda: train.train_main([TOY_CONFIG, '--work-dir', str(work_dir)]))
        assert refused.value.code.startswith(f'error: {work_dir} is held by a training still '
                                             f'running (process {first.pid} on ')
        assert len(refused.value.code.splitlines()) == 1
        assert os.listdir(work_dir) == [LOCK_NAME] and not started
    finally:
        first.kill()
        first.wait()
    train.train_main([TOY_CONFIG, '--work-dir', str(work_dir)])  # that process is gone
    assert started == [f'{os.getpid()} {socket.gethostname()}\n'] and not lock.exists()
    with hold_work_dir(str(work_dir)):
        with pytest.raises(WorkDirInUseError, match='is held by a training still running'):
            train.train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--overwrite'])


def test_resuming_a_finished_run_says_it_is_complete(toy_coco, tmp_path, monkeypatch):
    """It would say "resumed", train nothing and exit 0; it names the checkpoint, the
    schedule's end and the option that trains longer, before anything is built."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    torch.save({'meta': {'epoch': 1, 'iter': 6}, 'state_dict': {}}, work_dir / 'epoch_1.pth')
    started = []
    monkeypatch.setattr(train, 'build_runner', lambda cfg: started.append(cfg))
    with pytest.raises(RunCompleteError, match=r'ends the schedule \(epoch 1 of 1\): the run is '
                                               r'complete.*train_cfg\.max_epochs=2'):
        train.train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--resume', '--cfg-options',
                          *toy_options(toy_coco), 'train_cfg.max_epochs=1'])
    assert not started


def test_an_image_of_another_size_than_its_annotation_is_named(toy_coco, tmp_path):
    """A training image replaced by one of another size: its boxes and masks no
    longer fit, and mmdet would fail in a mask operation naming no file. Raised in
    a dataloader worker, it still ends as one line naming the file and both sizes."""
    import cv2
    for path in sorted((toy_coco / 'train').iterdir()):
        cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (100, 80)))
    with pytest.raises(SystemExit) as refused:
        run(lambda: train.train_main([TOY_CONFIG, '--work-dir', str(tmp_path / 'work'),
                                      '--cfg-options', *toy_options(toy_coco, workers=1)]))
    error = refused.value.code
    assert len(error.splitlines()) == 1, error
    assert re.fullmatch(rf"error: image {toy_coco / 'train'}/train_\d+\.jpg is 80x100 \(HxW\) "
                        r"but its annotation file says 192x256: restore the original file, or "
                        r"fix its width / height in the annotations", error), error
