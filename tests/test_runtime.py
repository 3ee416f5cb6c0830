"""Runtime behaviour: bad data, atomic checkpoints, SIGKILL + resume, 2-rank DDP on CPU."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import efficientvit_det  # noqa: F401
from efficientvit_det.cli import DatasetError, check_coco_annotations
from efficientvit_det.runtime import AtomicLocalBackend, LoadImageOrSkip
from efficientvit_det.toy_data import make_coco_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_CONFIG = os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_toy.py')
PYTHON = sys.executable


@pytest.fixture()
def coco(tmp_path):
    root = tmp_path / 'coco'
    make_coco_toy(str(root), num_train=6, num_val=4, seed=5)
    return root


def _edit(ann_file, change):
    data = json.load(open(ann_file))
    change(data)
    json.dump(data, open(ann_file, 'w'))


# ----------------------------------------------------------------------------- bad data

def test_consistent_toy_annotations_pass(coco):
    check_coco_annotations(str(coco / 'annotations/instances_train.json'), str(coco / 'train'),
                           'train')


def test_unknown_category_is_named(coco):
    ann = str(coco / 'annotations/instances_train.json')
    _edit(ann, lambda d: d['annotations'][0].update(category_id=42))
    with pytest.raises(DatasetError, match='category_id=42'):
        check_coco_annotations(ann, str(coco / 'train'), 'train')


def test_empty_annotation_list_is_an_error(coco):
    ann = str(coco / 'annotations/instances_val.json')
    _edit(ann, lambda d: d.update(annotations=[]))
    with pytest.raises(DatasetError, match='empty "annotations"'):
        check_coco_annotations(ann, str(coco / 'val'), 'val')


def test_missing_image_file_is_named(coco):
    os.remove(coco / 'train' / 'train_00002.jpg')
    with pytest.raises(DatasetError, match='train_00002.jpg'):
        check_coco_annotations(str(coco / 'annotations/instances_train.json'),
                               str(coco / 'train'), 'train')


def test_annotation_pointing_at_unknown_image_is_named(coco):
    ann = str(coco / 'annotations/instances_train.json')
    _edit(ann, lambda d: d['annotations'][0].update(image_id=999))
    with pytest.raises(DatasetError, match='image_id=999'):
        check_coco_annotations(ann, str(coco / 'train'), 'train')


def test_train_tool_reports_bad_annotations_before_training(coco, tmp_path):
    ann = str(coco / 'annotations/instances_train.json')
    _edit(ann, lambda d: d['annotations'][0].update(category_id=42))
    result = subprocess.run(
        [PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(tmp_path / 'w'),
         '--cfg-options', *toy_options(coco)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert 'error:' in result.stderr and 'category_id=42' in result.stderr
    assert 'Traceback' not in result.stderr


def test_corrupt_image_is_skipped_in_training_and_named_in_testing(coco, capsys):
    path = coco / 'train' / 'train_00001.jpg'
    path.write_bytes(b'not a jpeg at all')
    results = dict(img_path=str(path))
    assert LoadImageOrSkip(skip_unreadable=True)(dict(results)) is None
    with pytest.raises(IOError, match='train_00001.jpg'):
        LoadImageOrSkip(skip_unreadable=False)(dict(results))
    good = LoadImageOrSkip(skip_unreadable=False)(dict(img_path=str(coco / 'train' /
                                                                    'train_00000.jpg')))
    assert good['img'].shape == (192, 256, 3)


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


def toy_options(root, workers=0):
    root = str(root).rstrip('/') + '/'
    options = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]
    options += [f'{s}_evaluator.ann_file={root}annotations/instances_val.json'
                for s in ('val', 'test')]
    options += [f'{s}_dataloader.num_workers={workers}' for s in ('train', 'val', 'test')]
    options += [f'{s}_dataloader.persistent_workers=False' for s in ('train', 'val', 'test')]
    return options


def short_run_options(coco, epochs):
    # one non-persistent worker: mmengine re-seeds it every epoch, so augmentation
    # is reproducible across a resume; no validation to keep it short
    return toy_options(coco, workers=1) + [
        'train_dataloader.batch_size=2', f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs + 1}', 'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'randomness.seed=0',
        'randomness.deterministic=True']


def _train(coco, work_dir, epochs, extra=()):
    return subprocess.Popen(
        [PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(work_dir), *extra,
         '--cfg-options', *short_run_options(coco, epochs)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_matches_uninterrupted_run(coco, tmp_path):
    epochs = 3
    reference = _train(coco, tmp_path / 'reference', epochs)
    killed = _train(coco, tmp_path / 'killed', epochs)
    deadline = time.time() + 300
    while not (tmp_path / 'killed' / 'epoch_1.pth').exists():  # kill mid-epoch 2
        assert killed.poll() is None and time.time() < deadline, killed.stderr.read()[-2000:]
        time.sleep(0.2)
    time.sleep(1.0)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / 'killed' / f'epoch_{epochs}.pth').exists()
    leftovers = [p.name for p in (tmp_path / 'killed').iterdir() if '.partial' in p.name]
    assert not leftovers

    resumed = _train(coco, tmp_path / 'killed', epochs, extra=['--resume'])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-3000:]
    final_a = torch.load(tmp_path / 'reference' / f'epoch_{epochs}.pth')
    final_b = torch.load(tmp_path / 'killed' / f'epoch_{epochs}.pth')
    assert final_a['meta']['iter'] == final_b['meta']['iter']
    for key, value in final_a['state_dict'].items():
        assert torch.allclose(value, final_b['state_dict'][key], atol=1e-6), key


def test_two_process_cpu_ddp_ranks_agree(coco, tmp_path):
    env = dict(os.environ, PYTHON=PYTHON, PORT='29533', OMP_NUM_THREADS='1')
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', TOY_CONFIG, '2', '--work-dir', str(tmp_path / 'ddp'),
         '--cfg-options', *toy_options(coco), 'train_dataloader.batch_size=1',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=2'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / 'ddp' / 'rank_consistency.json'))
    assert report['ranks'] == 2 and report['agree'] is True


# ----------------------------------------------------------------------------- strict loading

@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
def test_checkpoint_that_does_not_fit_stops_training_before_it_starts(coco, tmp_path, resume):
    """mmengine alone would load the matching keys, warn, and train a half-random model."""
    from efficientvit_det.checkpoints import CheckpointMismatchError
    from efficientvit_det.cli import train_main
    from efficientvit_det.registry import build_model_from_config
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
                        *toy_options(coco), *options])
        assert message in str(err.value) and str(checkpoint) in str(err.value)
        assert not list(work_dir.rglob('*.pth'))  # not one iteration trained


def test_second_run_into_a_used_work_dir_is_refused(tmp_path, monkeypatch):
    """A new run would overwrite the earlier run's checkpoints and last_checkpoint."""
    from efficientvit_det import cli
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth').write_bytes(b'earlier run')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    started = []
    monkeypatch.setattr(cli, 'check_dataset_paths', lambda cfg, splits: None)
    runner = type('Runner', (), {'train': lambda self: None})
    monkeypatch.setattr(cli, '_build_runner', lambda cfg: started.append(cfg) or runner())
    with pytest.raises(cli.WorkDirInUseError) as err:
        cli.train_main([TOY_CONFIG, '--work-dir', str(work_dir)])
    message = str(err.value)
    assert 'epoch_1.pth' in message and 'last_checkpoint' in message
    assert '--resume' in message and '--overwrite' in message and not started
    assert (work_dir / 'epoch_1.pth').read_bytes() == b'earlier run'
    cli.train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--resume'])
    cli.train_main([TOY_CONFIG, '--work-dir', str(work_dir), '--overwrite'])
    assert len(started) == 2
    # through the tool: one line, no traceback
    result = subprocess.run([PYTHON, 'tools/train.py', TOY_CONFIG, '--work-dir', str(work_dir)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'error: ' + str(work_dir) + ' already holds checkpoints' in result.stderr
