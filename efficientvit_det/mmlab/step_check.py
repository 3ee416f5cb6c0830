"""One training step and one prediction of a config's model on a synthetic image:
the check that a swapped backbone fits (``tools/swap_backbone.py --check`` and
the zoo tests).

It catches what a build alone does not: a shape error in the first forward, a
loss that is not finite, a backbone the gradient does not reach, a prediction
of the wrong form. Nothing is downloaded (the model is built without its
pretrained weights) and no dataset is read.
"""
import logging
import math
from dataclasses import dataclass
from typing import Dict, List

from .scope import build_model_from_config, config_scope

#: small enough for a CPU, large enough for the coarsest level of a stride-64 backbone
CHECK_SIDE = 128


@dataclass
class StepReport:
    """The losses of the step (summed per term), the gradient norm reaching the
    backbone, and what ``predict`` returned for the image."""
    losses: Dict[str, float]
    backbone_grad_norm: float
    prediction: List[str]

    @property
    def ok(self) -> bool:
        return bool(self.losses) and all(math.isfinite(v) for v in self.losses.values()) \
            and self.backbone_grad_norm > 0 and bool(self.prediction)


def check_one_step(cfg, side: int = CHECK_SIDE) -> StepReport:
    """Build ``cfg.model`` (no weights), run one loss + backward on a ``side`` x
    ``side`` image with two objects, then ``predict`` on it."""
    import torch
    from mmengine.logging import MMLogger
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(build_model_from_config(cfg))  # SyncBN needs a process group
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter's init
    try:
        model.init_weights()  # the heads' own init (a focal loss's prior bias, ...)
    finally:
        logger.setLevel(level)
    queries = getattr(model, 'num_queries', 0)
    if queries:  # DINO picks its queries among the positions, most at stride 8
        side = max(side, 32 * math.ceil(8 * math.sqrt(queries) / 32))
    preprocessor = model.data_preprocessor
    if getattr(preprocessor, 'batch_augments', None):  # e.g. padding every batch to 1024
        preprocessor.batch_augments = None
    if getattr(preprocessor, 'size', None):  # mmseg pads every batch to the crop size
        preprocessor.size = (side, side)
    segmentor = config_scope(cfg) == 'mmseg'
    with_masks = predicts_masks(model)
    batch = synthetic_batch(side, segmentor, with_masks)
    model.train()
    data = preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    grads = [p.grad.norm() for p in model.backbone.parameters() if p.grad is not None]
    grad_norm = float(torch.stack(grads).norm()) if grads else 0.0
    model.eval()
    with torch.no_grad():
        results = model.test_step(synthetic_batch(side, segmentor, with_masks))
    return StepReport(losses={k: float(sum_of(v)) for k, v in losses.items() if 'loss' in k},
                      backbone_grad_norm=grad_norm,
                      prediction=prediction_form(results[0], side))


def sum_of(value):
    total = sum(v.sum() for v in value) if isinstance(value, (list, tuple)) else value.sum()
    return total.detach()


def predicts_masks(model) -> bool:
    """Whether the detector is trained on instance masks (they are given only then:
    a box detector may read a mask as something else)."""
    roi_head = getattr(model, 'roi_head', None)
    return bool(getattr(roi_head, 'with_mask', False)) or hasattr(model, 'mask_head') or \
        'Mask' in type(model).__name__


def synthetic_batch(side: int, segmentor: bool, with_masks: bool = False) -> dict:
    """Two noise images with the same two rectangles (two: batch statistics of a
    1x1 pooled map need more than one value), labelled for detection (boxes,
    masks if asked) or segmentation (a label map)."""
    import torch
    generator = torch.Generator().manual_seed(0)
    pairs = [synthetic_image(side, segmentor, with_masks, generator) for _ in range(2)]
    return dict(inputs=[image for image, _ in pairs], data_samples=[s for _, s in pairs])


def synthetic_image(side: int, segmentor: bool, with_masks: bool, generator):
    import torch
    image = torch.randint(0, 256, (3, side, side), dtype=torch.uint8, generator=generator)
    boxes = [(side // 8, side // 8, side // 2, side // 2),
             (side // 3, side // 4, side - 8, side - 4)]
    meta = dict(img_shape=(side, side), ori_shape=(side, side), pad_shape=(side, side),
                scale_factor=(1.0, 1.0), img_id=0)
    labels = torch.zeros(side, side, dtype=torch.long)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        labels[y1:y2, x1:x2] = i + 1
    if segmentor:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=labels[None])
    else:
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                           labels=torch.tensor([0, 1]))
        if with_masks:
            masks = torch.stack([labels == i + 1 for i in range(len(boxes))]).numpy()
            sample.gt_instances.masks = BitmapMasks(masks.astype('uint8'), side, side)
        sample.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                                labels=torch.zeros(0, dtype=torch.long))
    image[:, labels > 0] //= 2
    return image, sample


def prediction_form(result, side: int) -> List[str]:
    """What one prediction holds, e.g. ``['bboxes (N, 4)', 'masks (N, H, W)']``; an
    empty list if it is not of the form mmdet's / mmseg's tools read."""
    form = []
    if 'pred_sem_seg' in result:
        shape = tuple(result.pred_sem_seg.data.shape)
        return [f'pred_sem_seg {shape}'] if shape == (1, side, side) else []
    instances = result.get('pred_instances')
    if instances is None:
        return []
    count = len(instances)
    bboxes = instances.get('bboxes')
    if bboxes is None or tuple(bboxes.shape) != (count, 4) or len(instances.scores) != count \
            or len(instances.labels) != count:
        return []
    form.append(f'bboxes, scores, labels ({count})')
    masks = instances.get('masks')
    if masks is not None:
        if tuple(masks.shape) != (count, side, side):
            return []
        form.append('masks')
    return form
