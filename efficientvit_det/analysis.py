"""What ``tools/analysis/`` prints and draws: a whole model's parameters and MACs per
part, the training data as the model sees it, and training curves."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

#: the parts of a detector / segmentor, in the order data flows through them
PARTS = ('backbone', 'neck', 'rpn_head', 'bbox_head', 'roi_head.bbox_head',
         'roi_head.mask_head', 'decode_head', 'auxiliary_head')


# ----------------------------------------------------------------------------- complexity

def model_complexity(config: str, height: int, width: int) -> List[Dict[str, object]]:
    """Rows (part, params_m, gmacs) for the whole model of ``config`` on one
    ``height`` x ``width`` image, ending with the total, in mmdet's tensor mode: a
    two-stage box head runs on every proposal the RPN keeps at test time
    (``test_cfg.rpn.max_per_img``), the mask head on the first 100."""
    import torch

    from .latency.engine import build_target
    from .latency.measure import count_flops_by_module
    _, _, wrapped = build_target(config=config, whole=True, post_processing=False)
    model = wrapped.model
    torch.manual_seed(0)  # the proposals the RoI heads see depend on the weights
    macs = count_flops_by_module(wrapped, torch.zeros(1, 3, height, width))
    modules = dict(model.named_modules())
    rows = []
    for part in PARTS:
        if part in modules:
            params = sum(p.numel() for p in modules[part].parameters())
            rows.append(dict(part=part, params_m=params / 1e6,
                             gmacs=macs_of(macs, f'model.{part}') / 1e9))
    rows.append(dict(part='total', params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                     gmacs=macs[''] / 1e9))
    return rows


def macs_of(counts: Dict[str, int], name: str) -> int:
    """MACs of module ``name``; mmdet runs some heads through ``head.forward()``,
    which only their submodules see, so then the outermost of those are summed."""
    if name in counts:
        return counts[name]
    inside = [k for k in counts if k.startswith(name + '.')]
    return sum(counts[k] for k in inside
               if not any(k.startswith(other + '.') for other in inside))


def format_complexity(rows: List[Dict[str, object]]) -> str:
    total = rows[-1]['gmacs'] or 1
    lines = [f'{"part":<20} {"params (M)":>10} {"GMACs":>9} {"share":>6}']
    for row in rows:
        lines.append(f'{row["part"]:<20} {row["params_m"]:>10.2f} {row["gmacs"]:>9.2f} '
                     f'{100 * row["gmacs"] / total:>5.1f}%')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- dataset

def browse_dataset(config: str, out_dir: str, count: int = 8,
                   cfg_options: Optional[dict] = None) -> List[str]:
    """Draw the ground truth of the first ``count`` training samples *after* the
    training pipeline (resize, flip, crop ...), which is what the model learns from."""
    import importlib

    import numpy as np
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from .cli import check_dataset_paths, skip_unreadable_training_images
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options or {})
    check_dataset_paths(cfg, ('train',))
    skip_unreadable_training_images(cfg)  # as training would
    scope = cfg.get('default_scope', 'mmdet')
    registry = importlib.import_module(f'{scope}.registry')
    written = []
    with DefaultScope.overwrite_default_scope(scope):
        dataset = registry.DATASETS.build(cfg.train_dataloader.dataset)
        visualizer = registry.VISUALIZERS.build(
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


# ----------------------------------------------------------------------------- curves

def read_scalars(work_dir: str) -> List[dict]:
    """The records of the latest run in ``work_dir`` (mmengine's
    ``<timestamp>/vis_data/scalars.json``, one JSON object per logged step)."""
    logs = sorted((osp.join(root, name) for root, _, files in os.walk(work_dir)
                   for name in files if name == 'scalars.json'), key=osp.getmtime)
    if not logs:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}: not an mmengine '
                                'work dir, or nothing logged yet')
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


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
