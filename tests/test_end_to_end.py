"""End to end on the built-in toy data: the demo's artefacts, and training that
actually learns (metric far above an untrained model's)."""
import json
import os

import torch

from efficientvit_det import cli, demo
from efficientvit_det.toy_data import make_ade_toy, make_coco_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_writes_metrics_predictions_and_loss_curve(tmp_path, capsys):
    data = tmp_path / 'toy_coco'
    make_coco_toy(str(data), num_train=8, num_val=4, seed=1)
    work = tmp_path / 'demo'
    metrics = demo.main(['--data-root', str(data), '--work-dir', str(work), '--epochs', '1',
                         '--cfg-options', 'default_hooks.logger.interval=1',
                         'train_dataloader.num_workers=0',
                         'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
                         'train_dataloader.persistent_workers=False',
                         'val_dataloader.persistent_workers=False',
                         'test_dataloader.persistent_workers=False'])
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics
    saved = json.load(open(work / 'demo_metrics.json'))
    assert saved['coco/bbox_mAP'] == metrics['coco/bbox_mAP'] and saved['minutes'] > 0
    # predictions on the val images through tools/infer.py's code path
    pictures = sorted(os.listdir(work / 'predictions' / 'vis'))
    assert pictures == sorted(os.listdir(data / 'val'))
    results = json.load(open(work / 'predictions' / 'predictions.json'))
    val_ids = {i['id'] for i in json.load(open(data / 'annotations' / 'instances_val.json'))[
        'images']}
    assert results and {r['image_id'] for r in results} <= val_ids
    assert (work / 'loss_curve.png').stat().st_size > 1000
    printed = capsys.readouterr().out
    assert 'coco/bbox_mAP' in printed and 'loss curve:' in printed
    assert 'python tools/infer.py IMAGES' in printed


def _seg_options(root, iters):
    options = [f'{s}_dataloader.dataset.data_root={root}/' for s in ('train', 'val', 'test')]
    options += [f'{s}_dataloader.num_workers=0' for s in ('train', 'val', 'test')]
    options += [f'{s}_dataloader.persistent_workers=False' for s in ('train', 'val', 'test')]
    return options + [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}',
                      f'param_scheduler.1.end={iters}',
                      f'default_hooks.checkpoint.interval={iters}']


def test_training_learns_far_above_untrained(tmp_path):
    """Semantic FPN + SHViT-S1 from scratch on toy ADE20K: a short run must lift
    mIoU far above what the same model scores untrained."""
    data = tmp_path / 'toy_ade'
    make_ade_toy(str(data), num_train=48, num_val=8, seed=2)
    config = os.path.join(ROOT, 'configs', 'toy', 'fpn_shvit_s1_ade20k_toy.py')
    iters = E2E_ITERS
    runner = cli.train_main([config, '--work-dir', str(tmp_path / 'trained'),
                             '--cfg-options', *_seg_options(data, iters)])
    trained = runner.test()
    untrained_ckpt = tmp_path / 'untrained.pth'
    torch.manual_seed(0)
    from mmengine.config import Config
    from test_detection import build_from_config
    torch.save({'state_dict': build_from_config(Config.fromfile(config)).state_dict()},
               untrained_ckpt)
    untrained = cli.test_main([config, str(untrained_ckpt), '--work-dir',
                               str(tmp_path / 'untrained'), '--cfg-options',
                               *_seg_options(data, iters)])
    assert trained['mIoU'] > untrained['mIoU'] + E2E_MARGIN, (trained, untrained)


E2E_ITERS = 80
E2E_MARGIN = 15.0
