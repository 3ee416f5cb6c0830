import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS)


@pytest.fixture(scope='session')
def reference_dir():
    """Key layouts of the public checkpoints (name<TAB>shape per tensor)."""
    return os.path.join(TESTS, 'reference_keys')


#: one pass of the toy recipe over this many generated images (~130 iterations, ~3 min
#: for Mask R-CNN): enough for detections well above an untrained model's
TOY_TRAIN_IMAGES = 640


@pytest.fixture(scope='session')
def trained_toy(tmp_path_factory):
    """``trained_toy('mask_rcnn' | 'retinanet')`` -> (config, checkpoint, data root,
    cfg options): the toy SHViT-S1 detector trained once per session, seeded."""
    from efficientvit_det import cli, demo
    from efficientvit_det.toy_data import make_coco_toy
    root = tmp_path_factory.mktemp('trained_toy')
    data = str(root / 'toy_coco')
    make_coco_toy(data, num_train=TOY_TRAIN_IMAGES, num_val=24, seed=4)
    trained = {}

    def train(detector):
        if detector not in trained:
            config = os.path.join(os.path.dirname(TESTS), 'configs', 'toy',
                                  f'{detector}_shvit_s1_toy.py')
            options = demo.toy_run_options(config, data) + ['randomness.seed=0']
            for split in ('train', 'val', 'test'):
                options += [f'{split}_dataloader.num_workers=0',
                            f'{split}_dataloader.persistent_workers=False']
            cli.train_main([config, '--work-dir', str(root / detector), '--cfg-options',
                            *options])
            trained[detector] = (config, str(root / detector / 'epoch_1.pth'), data, options)
        return trained[detector]
    return train
