"""The main job out of the box: toy data -> train Mask R-CNN (SHViT-S1) on CPU ->
COCO evaluation -> images with drawn predictions and a loss curve."""
import argparse
import json
import os
import os.path as osp
import time
from typing import List, Optional

from .cli import format_metrics, train_main
from .toy_data import make_coco_toy

DEFAULT_CONFIG = 'configs/toy/mask_rcnn_shvit_s1_toy.py'


def ensure_toy_coco(root: str) -> None:
    if osp.exists(osp.join(root, 'annotations', 'instances_val.json')):
        print(f'[demo] toy COCO dataset found at {root}')
        return
    print(f'[demo] generating the toy COCO dataset at {root} ...')
    make_coco_toy(root)


def plot_loss_curve(work_dir: str, out_file: str) -> Optional[str]:
    """Loss per logged iteration from mmengine's ``vis_data/scalars.json``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    logs = sorted(
        (osp.join(root, name) for root, _, files in os.walk(work_dir) for name in files
         if name == 'scalars.json'), key=osp.getmtime)
    steps, losses = [], []
    for line in open(logs[-1]) if logs else []:
        record = json.loads(line)
        if 'loss' in record and 'step' in record:
            steps.append(record['step'])
            losses.append(record['loss'])
    if not steps:
        return None  # fewer iterations than the logging interval
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses)
    ax.set_xlabel('iteration')
    ax.set_ylabel('total loss')
    ax.set_title('Mask R-CNN SHViT-S1, toy COCO')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def draw_predictions(runner, image_dir: str, out_dir: str, count: int = 4,
                     score_thr: float = 0.3) -> List[str]:
    """Boxes, masks and labels of the trained model on a few validation images."""
    import mmcv
    from mmdet.apis import inference_detector
    from mmdet.registry import VISUALIZERS
    os.makedirs(out_dir, exist_ok=True)
    model = runner.model
    model.cfg = runner.cfg
    model.eval()
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='demo_visualizer'))
    visualizer.dataset_meta = runner.test_dataloader.dataset.metainfo
    written = []
    for name in sorted(os.listdir(image_dir))[:count]:
        image = mmcv.imread(osp.join(image_dir, name), channel_order='rgb')
        result = inference_detector(model, osp.join(image_dir, name))
        out_file = osp.join(out_dir, name.replace('.jpg', '.png'))
        visualizer.add_datasample(name, image, data_sample=result, draw_gt=False,
                                  pred_score_thr=score_thr, out_file=out_file)
        written.append(out_file)
    return written


def main(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/toy_coco')
    parser.add_argument('--epochs', type=int, help='override the toy schedule length')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='further config overrides, passed to tools/train.py')
    args = parser.parse_args(argv)
    start = time.time()
    ensure_toy_coco(args.data_root)
    root = args.data_root.rstrip('/') + '/'
    options = [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]
    options += [f'{split}_evaluator.ann_file={root}annotations/instances_val.json'
                for split in ('val', 'test')]
    from mmengine.config import Config
    epochs = args.epochs or Config.fromfile(args.config).train_cfg.max_epochs
    # evaluate once, after training (below), not also inside the training loop
    options += [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs + 1}']
    options += args.cfg_options
    print(f'[demo] training {args.config} on CPU (progress: iteration, loss, ETA every 10 '
          f'iterations) -> {args.work_dir}')
    # the demo's own folder: a second demo replaces the first one's results
    runner = train_main([args.config, '--work-dir', args.work_dir, '--overwrite',
                         '--cfg-options', *options])
    print('[demo] evaluating on the toy val split (COCO bbox / segm mAP) ...')
    metrics = runner.test()
    print(format_metrics(metrics))
    drawn = draw_predictions(runner, osp.join(root, 'val'), osp.join(args.work_dir, 'predictions'))
    curve = plot_loss_curve(args.work_dir, osp.join(args.work_dir, 'loss_curve.png'))
    with open(osp.join(args.work_dir, 'demo_metrics.json'), 'w') as f:
        json.dump(dict(metrics, minutes=(time.time() - start) / 60), f, indent=2)
    print(f'[demo] done in {(time.time() - start) / 60:.1f} min')
    print(f'[demo] metrics:     {osp.join(args.work_dir, "demo_metrics.json")}')
    print(f'[demo] predictions: {", ".join(drawn)}')
    print(f'[demo] loss curve:  {curve or "none (fewer iterations than the logging interval)"}')
    print(f'[demo] checkpoints: {args.work_dir}/epoch_*.pth')
    return metrics
