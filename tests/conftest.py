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


#: one pass of the demo's recipe over this many images of the demo's toy set (160
#: iterations of 2): enough for detections well above an untrained model's
TOY_TRAIN_IMAGES = 320


@pytest.fixture(scope='session')
def trained_toy(tmp_path_factory):
    """``trained_toy()`` -> (config, checkpoint, data root, cfg options): the demo's
    Mask R-CNN + SHViT-S1 trained from scratch on the demo's toy set once per test
    run (on its first use), seeded, for the checks that need trained weights; the
    options point the config at the data."""
    trained = []

    def train():
        if not trained:
            from efficientvit_det.cli.train import train_main
            from efficientvit_det.mmlab.toy_data import DEMO_PROFILE, make_coco_toy
            from efficientvit_det.mmlab.toy_runs import toy_run_options
            root = tmp_path_factory.mktemp('trained_toy')
            data = str(root / 'toy_coco')
            make_coco_toy(data, num_train=TOY_TRAIN_IMAGES, num_val=24, seed=4,
                          profile=DEMO_PROFILE)
            config = os.path.join(ROOT, 'configs', 'toy', 'mask_rcnn_shvit_s1_demo.py')
            options = toy_run_options(config, data, 1) + ['randomness.seed=0']
            for split in ('train', 'val', 'test'):
                options += [f'{split}_dataloader.num_workers=0',
                            f'{split}_dataloader.persistent_workers=False']
            train_main([config, '--work-dir', str(root / 'work'), '--cfg-options', *options])
            trained.append((config, str(root / 'work' / 'epoch_1.pth'), data, options))
        return trained[0]
    return train


def pytest_collection_modifyitems(config, items):
    """The tests of the trained toy detector run on one pytest-xdist worker (it is
    trained once per worker that uses it); tests marked ``gpu`` are skipped, saying
    why, where CUDA is not available."""
    for item in items:
        if 'trained_toy' in getattr(item, 'fixturenames', ()):
            item.add_marker(pytest.mark.xdist_group('trained_toy'))
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs an NVIDIA GPU (CUDA is not available here)')
    for item in items:
        if item.get_closest_marker('gpu'):
            item.add_marker(skip)


def pytest_configure(config):
    """Under pytest-xdist each worker runs torch on one thread (and so do the
    processes its tests start): two workers of two threads each on a 2-core machine
    spin against each other (a training step 10x slower)."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        import torch
        os.environ['OMP_NUM_THREADS'] = '1'
        torch.set_num_threads(1)
