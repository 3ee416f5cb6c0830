"""Fixtures every test file may use: the reference key layouts, toy datasets made
once per session, and the toy detectors trained once per session."""
import os
import shutil

import pytest

from tests.support import REFERENCE_DIR, ROOT


@pytest.fixture(scope='session')
def reference_dir():
    """Key layouts of the public checkpoints (name<TAB>shape per tensor)."""
    return REFERENCE_DIR


@pytest.fixture(scope='session')
def toy_coco_pristine(tmp_path_factory):
    """A small toy COCO dataset (6 training, 4 val images), made once: never change
    it (take ``toy_coco`` for a copy of your own)."""
    from efficientvit_det.mmlab.toy_data import make_coco_toy
    root = tmp_path_factory.mktemp('toy_coco_pristine')
    make_coco_toy(str(root), num_train=6, num_val=4, seed=5)
    return root


@pytest.fixture()
def toy_coco(toy_coco_pristine, tmp_path):
    """This test's own copy of the small toy COCO dataset, to change at will."""
    root = tmp_path / 'coco'
    shutil.copytree(toy_coco_pristine, root)
    return root


#: one pass of the toy recipe over this many generated images (~130 iterations, ~3 min
#: for Mask R-CNN): enough for detections well above an untrained model's
TOY_TRAIN_IMAGES = 640

#: the other families' toy detectors: the SHViT-S1 toy config with its backbone swapped
#: (and the neck's input widths, which follow the backbone), as README's swap does
BACKBONE_SWAPS = {
    'shvit_s1': [],
    'efficientvit_m0': ['model.backbone.type=EfficientViT', 'model.backbone.arch=m0',
                        'model.neck.in_channels=[64,128,192]'],
    'uniform_xs': ['model.backbone.type=UniForm', 'model.backbone.arch=xs',
                   'model.neck.in_channels=[64,128,192]'],
}
#: model options of a toy detector's checks: after its one pass RetinaNet's scores are
#: still near the focal-loss prior (top scores 0.02-0.03, measured 2026-12-05), under
#: mmdet's score_thr of 0.05, so its checks read detections from 0.01 up
DETECTOR_OPTIONS = {'retinanet': ['model.test_cfg.score_thr=0.01']}
#: images a swapped backbone's detector trains on: its checkpoint is there for trained
#: weights (BatchNorm statistics, attention, heads), not for accuracy: ~40 iterations
SWAPPED_TRAIN_IMAGES = 160


@pytest.fixture(scope='session')
def trained_toy(tmp_path_factory):
    """``trained_toy('mask_rcnn' | 'retinanet', backbone='shvit_s1')`` -> (config,
    checkpoint, data root, training cfg options, model cfg options): the toy detector
    trained once per session, seeded; the model options swap the backbone (give
    them to whatever builds the model from the config and the checkpoint; for
    RetinaNet they also lower its score threshold, DETECTOR_OPTIONS)."""
    from efficientvit_det.cli.train import train_main
    from efficientvit_det.mmlab.toy_data import make_coco_toy
    from efficientvit_det.mmlab.toy_runs import toy_run_options
    root = tmp_path_factory.mktemp('trained_toy')
    data = str(root / 'toy_coco')
    make_coco_toy(data, num_train=TOY_TRAIN_IMAGES, num_val=24, seed=4)
    trained = {}

    def train(detector, backbone='shvit_s1'):
        if (detector, backbone) not in trained:
            config = os.path.join(ROOT, 'configs', 'toy', f'{detector}_shvit_s1_toy.py')
            swap = BACKBONE_SWAPS[backbone] + DETECTOR_OPTIONS.get(detector, [])
            # one pass (RetinaNet's recipe makes three): weights to check, not accuracy
            options = toy_run_options(config, data, 1) + ['randomness.seed=0'] + swap
            if BACKBONE_SWAPS[backbone]:
                options.append(f'train_dataloader.dataset.indices={SWAPPED_TRAIN_IMAGES}')
            for split in ('train', 'val', 'test'):
                options += [f'{split}_dataloader.num_workers=0',
                            f'{split}_dataloader.persistent_workers=False']
            work_dir = root / f'{detector}_{backbone}'
            train_main([config, '--work-dir', str(work_dir), '--cfg-options', *options])
            trained[detector, backbone] = (config, str(work_dir / 'epoch_1.pth'), data,
                                           options, swap)
        return trained[detector, backbone]
    return train


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, saying why, where CUDA is not available."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs an NVIDIA GPU (CUDA is not available here)')
    for item in items:
        if item.get_closest_marker('gpu'):
            item.add_marker(skip)
