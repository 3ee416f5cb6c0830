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

#: the other families' toy detectors: the SHViT-S1 toy config with its backbone swapped
#: (and the neck's input widths, which follow the backbone), as README's swap does
BACKBONE_SWAPS = {
    'shvit_s1': [],
    'efficientvit_m0': ['model.backbone.type=EfficientViT', 'model.backbone.arch=m0',
                        'model.backbone.window_size=(7,7,4)',
                        'model.neck.in_channels=[64,128,192]'],
    'uniform_xs': ['model.backbone.type=UniForm', 'model.backbone.arch=xs',
                   'model.neck.in_channels=[64,128,192]'],
}
#: images a swapped backbone's detector trains on: its checkpoint is there for trained
#: weights (BatchNorm statistics, attention, heads), not for accuracy, so Mask R-CNN
#: gets ~40 iterations; RetinaNet the whole pass (after 40 its scores are still at the
#: focal-loss prior, ~0.01-0.02, under score_thr 0.05)
SWAPPED_TRAIN_IMAGES = {'mask_rcnn': 160, 'retinanet': TOY_TRAIN_IMAGES}


@pytest.fixture(scope='session')
def trained_toy(tmp_path_factory):
    """``trained_toy('mask_rcnn' | 'retinanet', backbone='shvit_s1')`` -> (config,
    checkpoint, data root, training cfg options, model cfg options): the toy detector
    trained once per session, seeded; the model options swap the backbone (give
    them to whatever builds the model from the config and the checkpoint)."""
    from efficientvit_det import cli, demo
    from efficientvit_det.toy_data import make_coco_toy
    root = tmp_path_factory.mktemp('trained_toy')
    data = str(root / 'toy_coco')
    make_coco_toy(data, num_train=TOY_TRAIN_IMAGES, num_val=24, seed=4)
    trained = {}

    def train(detector, backbone='shvit_s1'):
        if (detector, backbone) not in trained:
            config = os.path.join(os.path.dirname(TESTS), 'configs', 'toy',
                                  f'{detector}_shvit_s1_toy.py')
            swap = BACKBONE_SWAPS[backbone]
            # one pass (RetinaNet's recipe makes three): weights to check, not accuracy
            options = demo.toy_run_options(config, data, 1) + ['randomness.seed=0'] + swap
            if swap:
                options.append('train_dataloader.dataset.indices='
                               f'{SWAPPED_TRAIN_IMAGES[detector]}')
            for split in ('train', 'val', 'test'):
                options += [f'{split}_dataloader.num_workers=0',
                            f'{split}_dataloader.persistent_workers=False']
            work_dir = root / f'{detector}_{backbone}'
            cli.train_main([config, '--work-dir', str(work_dir), '--cfg-options', *options])
            trained[detector, backbone] = (config, str(work_dir / 'epoch_1.pth'), data,
                                           options, swap)
        return trained[detector, backbone]
    return train
