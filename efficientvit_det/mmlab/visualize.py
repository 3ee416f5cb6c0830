"""What ``tools/analysis/`` draws: the training data as the model sees it, and
training curves."""
import json
import os
import os.path as osp
from typing import List, Optional, Sequence

from ..errors import UnreadableLogError


def browse_dataset(config: str, out_dir: str, count: int = 8,
                   cfg_options: Optional[dict] = None) -> List[str]:
    """Draw the ground truth of the first ``count`` training samples *after* the
    training pipeline (resize, flip, crop ...), which is what the model learns from."""
    import numpy as np
    from mmengine.registry import DefaultScope

    from .datasets import check_dataset_paths
    from .scope import config_scope, read_config, registries
    cfg = read_config(config)
    cfg.merge_from_dict(cfg_options or {})
    check_dataset_paths(cfg, ('train',))
    written = []
    with DefaultScope.overwrite_default_scope(config_scope(cfg)):
        dataset = registries(cfg).DATASETS.build(cfg.train_dataloader.dataset)
        visualizer = registries(cfg).VISUALIZERS.build(
            dict(cfg.visualizer, name=f'browse_{os.getpid()}', vis_backends=None))
        visualizer.dataset_meta = dataset.metainfo
        os.makedirs(out_dir, exist_ok=True)
        for index in range(min(count, len(dataset))):
            item = dataset[index]
            sample = _drawable(item['data_samples'])
            image = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR CHW -> RGB HWC
            name = osp.splitext(osp.basename(sample.img_path))[0]
            out_file = osp.join(out_dir, f'{index:03d}_{name}.jpg')
            visualizer.add_datasample(name, np.ascontiguousarray(image), sample,
                                      draw_gt=True, draw_pred=False, show=False,
                                      out_file=out_file)
            written.append(out_file)
    return written


def _drawable(sample):
    """Detection ground truth in the forms mmdet's visualizer draws: the training
    pipeline leaves box objects and bitmap/polygon masks, it takes tensors and
    boolean arrays."""
    instances = sample.get('gt_instances')
    if instances is None:
        return sample  # segmentation: label maps are drawn as they are
    if hasattr(instances.get('bboxes'), 'tensor'):
        instances.bboxes = instances.bboxes.tensor
    if hasattr(instances.get('masks'), 'to_ndarray'):
        instances.masks = instances.masks.to_ndarray().astype(bool)
    return sample


def read_scalars(work_dir: str) -> List[dict]:
    """The records of the latest run in ``work_dir`` (mmengine's
    ``<timestamp>/vis_data/scalars.json``, one JSON object per logged step)."""
    logs = sorted((osp.join(root, name) for root, _, files in os.walk(work_dir)
                   for name in files if name == 'scalars.json'), key=osp.getmtime)
    if not logs:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}: not an mmengine '
                                'work dir, or nothing logged yet')
    with open(logs[-1]) as f:
        lines = [line for line in f if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # only the last line may be cut (a run killed mid-write)
                raise UnreadableLogError(f'{logs[-1]}, line {number}: not JSON; is this '
                                         'an mmengine scalars.json?') from None
    return records


def plot_curves(work_dirs: Sequence[str], keys: Sequence[str], out_file: str,
                title: Optional[str] = None) -> Optional[str]:
    """One panel per key, one line per work dir, in one PNG; None when no work dir
    logged any of the keys."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    curves = {key: [] for key in keys}
    for work_dir in work_dirs:
        records = read_scalars(work_dir)
        for key in keys:
            points = [(r['step'], r[key]) for r in records if key in r and 'step' in r]
            if points:
                curves[key].append((work_dir, points))
    keys = [key for key in keys if curves[key]]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for work_dir, points in curves[key]:
            ax.plot(*zip(*points), marker='o' if len(points) < 20 else None,
                    label=osp.basename(osp.normpath(work_dir)))
        ax.set_xlabel('iteration' if 'loss' in key or key == 'lr' else 'step')
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if len(work_dirs) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
