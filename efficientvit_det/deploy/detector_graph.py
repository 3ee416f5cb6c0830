"""A whole detector as one traceable graph: image in, final detections out.

mmdet 3.x cannot export its detectors with their post-processing (mmdeploy, the
usual exporter, is unmaintained), so :class:`DetectorGraph` re-expresses an mmdet
RetinaNet / Mask R-CNN (any anchor-based single-stage detector with sigmoid
classification, or RPN + standard RoI head, with or without a mask head) in
operators that ONNX has: NMS becomes ``NonMaxSuppression``, RoIAlign ``RoiAlign``
(opset 16 for the aligned form), both through torchvision. It keeps the mmdet
model's own modules and weights, and computes what ``model.predict`` computes
with ``rescale=False`` (tested, and checked by ``tools/export_onnx.py --whole``).

Input: one image, ``(1, 3, H, W)`` float, BGR, 0-255 (as ``mmcv.imread`` gives
it), already resized; the graph normalises it and pads it to the config's size
divisor (32) as mmdet's data preprocessor does.
Output: ``boxes (N, 4)`` x1y1x2y2 in input pixels, ``scores (N,)``, ``labels (N,)``
and, with a mask head, ``masks (N, M, M)``: each detection's mask probabilities in
its box (M = 28 in mmdet's configs), to paste into the image with
:func:`paste_masks`. Everything that depends on the input size (padding, anchors,
box clipping, how many candidates a level has for its top-k) is computed from the
image's shape in the graph, so one export can take other sizes (``--dynamic``) as
far as the backbone allows (windowed attention: see
:func:`~efficientvit_det.deploy.onnx_export.dynamic_size_limit`).
"""
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torchvision
from torch import nn

from ..errors import ExportUnsupported, UnreadableImageError
from .outputs import as_numpy

OUTPUT_NAMES = ('boxes', 'scores', 'labels', 'masks')
#: how far an export's detections may be from PyTorch's and still count as the same
#: (measured on trained toy checkpoints: 1e-4 px, 7e-7, mask IoU 0.9998 against mmdet)
AGREEMENT = dict(max_box_diff_px=0.05, max_score_diff=1e-3, max_mask_prob_diff=1e-3,
                 min_mask_iou=0.99)


class DetectorGraph(nn.Module):
    """An mmdet detector's inference as named stages (see :meth:`stages`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from mmdet.models.dense_heads import AnchorHead, RPNHead
        from mmdet.models.roi_heads import StandardRoIHead
        from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox
        self._delta2bbox = delta2bbox  # mmdet is imported only where a graph is built
        self.model = model  # the mmdet model: its submodules keep their names
        self.two_stage = getattr(model, 'with_rpn', False)
        if not getattr(model, 'with_neck', False):
            supported = False
        elif self.two_stage:
            roi_head = model.roi_head
            supported = (isinstance(model.rpn_head, RPNHead) and
                         type(roi_head) is StandardRoIHead and
                         _decodes_deltas(model.rpn_head, roi_head.bbox_head) and
                         not roi_head.bbox_head.reg_class_agnostic and
                         not (roi_head.with_mask and roi_head.mask_head.class_agnostic))
        else:
            head = getattr(model, 'bbox_head', None)
            supported = (isinstance(head, AnchorHead) and head.use_sigmoid_cls and
                         _decodes_deltas(head))
        if not supported:
            raise ExportUnsupported(
                f'{type(model).__name__}: whole-detector graphs cover anchor-based single-'
                'stage detectors with sigmoid scores (RetinaNet) and RPN + StandardRoIHead '
                'two-stage detectors (Faster / Mask R-CNN, class-specific box and mask '
                'heads), each with a neck and DeltaXYWHBBoxCoder box decoding; time its '
                'backbone (without --whole) instead')
        preprocessor = model.data_preprocessor  # its settings (BGR->RGB, mean, std, padding)
        self.channel_order = [2, 1, 0] if preprocessor._channel_conversion else [0, 1, 2]
        self.register_buffer('mean', preprocessor.mean.detach().clone().view(1, 3, 1, 1))
        self.register_buffer('std', preprocessor.std.detach().clone().view(1, 3, 1, 1))
        self.pad_divisor = preprocessor.pad_size_divisor
        self.pad_value = float(preprocessor.pad_value)
        self.with_mask = self.two_stage and model.roi_head.with_mask
        self.output_names = list(OUTPUT_NAMES[:4 if self.with_mask else 3])

    # ------------------------------------------------------------------ stages

    def stages(self) -> List[Tuple[str, Callable]]:
        """(name, function) in data-flow order; each takes the previous one's result,
        the first the image, and :meth:`forward` is their composition (so timing
        them one by one times the whole). Everything a later stage needs travels in
        the result (the image's box limits too), nothing is kept on the graph."""
        stages = [('backbone', self.run_backbone), ('neck', self.run_neck),
                  ('dense head + NMS', self.run_dense_head)]
        if self.two_stage:
            stages.append(('box head + NMS', self.run_box_head))
        if self.with_mask:
            stages.append(('mask head', self.run_mask_head))
        return stages

    def forward(self, image: torch.Tensor):
        state = image
        for _, stage in self.stages():
            state = stage(state)
        return state

    def run_backbone(self, image):
        if image.shape[0] != 1:
            raise ValueError(f'the whole-detector graph takes one image, got a batch of '
                             f'{image.shape[0]}')
        # boxes are clipped to the image, as mmdet's: (W, H, W, H) read from its
        # shape in the graph, not written into it as constants
        limits = torch._shape_as_tensor(image)[2:].flip(0).repeat(2).to(image.dtype)
        normalised = (image[:, self.channel_order] - self.mean) / self.std
        height, width = image.shape[-2:]
        return self.model.backbone(torch.nn.functional.pad(  # bottom / right, as mmdet
            normalised, (0, -width % self.pad_divisor, 0, -height % self.pad_divisor),
            value=self.pad_value)), limits

    def run_neck(self, state):
        features, limits = state
        return self.model.neck(features), limits

    def run_dense_head(self, state):
        features, limits = state
        if self.two_stage:
            return features, self._proposals(features, limits), limits
        return self._single_stage_detections(features, limits)

    def run_box_head(self, state):
        """Proposals -> the RoI head's detections (per-class NMS); the features ride
        along for the mask head."""
        features, proposals, limits = state
        roi_head, cfg = self.model.roi_head, self.model.roi_head.test_cfg
        class_logits, deltas = roi_head.bbox_head(
            _extract(roi_head.bbox_roi_extractor, features, _as_rois(proposals)))
        num_classes = roi_head.bbox_head.num_classes
        scores = class_logits.softmax(-1)[:, :num_classes]
        boxes = self._decode(roi_head.bbox_head.bbox_coder,
                             proposals.repeat_interleave(num_classes, dim=0),
                             deltas.view(-1, 4), limits)
        labels = torch.arange(num_classes, device=scores.device).expand_as(scores).reshape(-1)
        keep = scores.reshape(-1) > cfg.score_thr
        detections = _nms(boxes[keep], scores.reshape(-1)[keep], labels[keep],
                          cfg.nms.iou_threshold, cfg.max_per_img)
        return (features, *detections) if self.with_mask else detections

    def run_mask_head(self, state):
        """Each detection's mask probabilities in its box, for its class."""
        features, boxes, scores, labels = state
        roi_head = self.model.roi_head
        mask_logits = roi_head.mask_head(
            _extract(roi_head.mask_roi_extractor, features, _as_rois(boxes)))
        masks = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
        return boxes, scores, labels, masks.sigmoid()

    # ------------------------------------------------------------------ dense heads

    def _level_outputs(self, head, features):
        """Per level: (class logits (A*h*w, C), deltas (A*h*w, 4), anchors), rows
        ordered as mmdet orders them (location-major). Anchors are ranked by logit,
        not by its sigmoid: the same order, without the sigmoid's loss of precision
        far from 0 (ONNX Runtime's and torch's differ there, which reorders the
        weakest candidates and so changes which make the cut)."""
        class_maps, delta_maps = head(features)
        anchors = head.prior_generator.grid_priors([m.shape[-2:] for m in class_maps],
                                                   device=class_maps[0].device)
        return [(c.permute(0, 2, 3, 1).reshape(-1, head.cls_out_channels),
                 d.permute(0, 2, 3, 1).reshape(-1, 4), a)
                for c, d, a in zip(class_maps, delta_maps, anchors)]

    def _proposals(self, features, limits):
        """RPN: the top ``nms_pre`` anchors per level, decoded, NMS within each
        level (mmdet's RPN treats levels as classes), the best ``max_per_img``."""
        head = self.model.rpn_head
        cfg = head.test_cfg
        boxes, logits, levels = [], [], []
        for level, (logit, delta, anchor) in enumerate(self._level_outputs(head, features)):
            logit, index = _top(logit.reshape(-1), cfg.nms_pre)
            boxes.append(self._decode(head.bbox_coder, anchor[index], delta[index], limits))
            logits.append(logit)
            levels.append(torch.full_like(index, level))
        boxes, logits, levels = _drop_small(cfg, torch.cat(boxes), torch.cat(logits),
                                            torch.cat(levels))
        return _nms(boxes, logits, levels, cfg.nms.iou_threshold, cfg.max_per_img)[0]

    def _single_stage_detections(self, features, limits):
        """Per level the top ``nms_pre`` (anchor, class) pairs above ``score_thr``,
        decoded; then NMS per class and the best ``max_per_img``."""
        head = self.model.bbox_head
        cfg = head.test_cfg
        boxes, logits, labels = [], [], []
        for logit, delta, anchor in self._level_outputs(head, features):
            logit, index = _top(logit.reshape(-1), cfg.nms_pre)
            keep = logit.sigmoid() > cfg.score_thr
            logit, index = logit[keep], index[keep]
            rows = torch.div(index, head.cls_out_channels, rounding_mode='floor')
            boxes.append(self._decode(head.bbox_coder, anchor[rows], delta[rows], limits))
            logits.append(logit)
            labels.append(index % head.cls_out_channels)
        boxes, logits, labels = _nms(*_drop_small(cfg, torch.cat(boxes), torch.cat(logits),
                                                  torch.cat(labels)),
                                     cfg.nms.iou_threshold, cfg.max_per_img)
        return boxes, logits.sigmoid(), labels

    def _decode(self, coder, anchors, deltas, limits):
        """mmdet's box decoding, called directly: ``coder.decode`` switches to a
        path that imports ``mmdet.core`` (gone in 3.x) while exporting. Clipped here,
        as mmdet clips, to limits that follow the input size."""
        boxes = self._delta2bbox(anchors, deltas, coder.means, coder.stds, None,
                                 add_ctr_clamp=coder.add_ctr_clamp, ctr_clamp=coder.ctr_clamp)
        if coder.clip_border:
            boxes = torch.min(boxes.clamp(min=0), limits.to(boxes))
        return boxes

    @torch.no_grad()
    def sharpen_random_classifier_(self, factor: float = 10.0) -> None:
        """For random weights: a random box classifier spreads each RoI's softmax
        over all classes (~1/81 each, under ``score_thr``), so nothing would reach
        the mask head and a check or a timing would skip it. Scaling its logits
        makes each RoI's scores peak on a few classes as a trained head's do, and
        ``max_per_img`` detections flow through every stage."""
        if self.two_stage:
            classifier = self.model.roi_head.bbox_head.fc_cls
            classifier.weight.mul_(factor)
            classifier.bias.mul_(factor)

    def fuse(self):
        if hasattr(self.model.backbone, 'fuse'):
            self.model.backbone.fuse()
        return self


def _decodes_deltas(*heads) -> bool:
    """Whether every head decodes its boxes with mmdet's (dx, dy, dw, dh) deltas."""
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    return all(isinstance(head.bbox_coder, DeltaXYWHBBoxCoder) for head in heads)


def _top(values, limit: int):
    """The ``limit`` largest values and their indices (mmdet reads a limit <= 0 as
    none); fewer where there are fewer: while tracing, a count taken from the shape
    in the graph (an export then takes other sizes), in eager a plain int."""
    if torch.jit.is_tracing():
        count = torch._shape_as_tensor(values)[0]
        return values.topk(count if limit <= 0 else count.clamp(max=limit))
    count = values.shape[0]
    return values.topk(count if limit <= 0 else min(count, limit))


def _drop_small(cfg, boxes, *per_box):
    """Boxes no larger than ``min_bbox_size`` on a side go, as in mmdet (which keeps
    zero-area boxes out with its default 0); a negative size keeps all."""
    size = cfg.get('min_bbox_size', -1)
    if size < 0:
        return (boxes, *per_box)
    keep = ((boxes[:, 2] - boxes[:, 0]) > size) & ((boxes[:, 3] - boxes[:, 1]) > size)
    return (boxes[keep], *(values[keep] for values in per_box))


def _nms(boxes, scores, groups, iou_threshold: float, max_kept: int):
    """NMS within each group (class, or RPN level), best first, at most ``max_kept``."""
    keep = torchvision.ops.batched_nms(boxes, scores, groups, iou_threshold)
    if max_kept > 0:  # a slice, not a count: the number kept depends on the image
        keep = keep[:max_kept]
    return boxes[keep], scores[keep], groups[keep]


def _as_rois(boxes):
    """Boxes of the one image as RoIs: (batch index 0, x1, y1, x2, y2)."""
    return torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)


def _extract(extractor, features, rois):
    """mmdet's SingleRoIExtractor with torchvision's RoIAlign: each RoI pooled from
    the level its size maps to (``extractor.map_roi_levels``)."""
    layers = extractor.roi_layers
    levels = extractor.map_roi_levels(rois, len(layers))
    size = layers[0].output_size
    pooled = rois.new_zeros(rois.shape[0], extractor.out_channels, *size)
    for level, layer in enumerate(layers):
        index = torch.nonzero(levels == level).squeeze(1)
        pooled[index] = torchvision.ops.roi_align(
            features[level], rois[index], size, layer.spatial_scale, layer.sampling_ratio,
            aligned=layer.aligned)
    return pooled


def noise_image(height: int, width: int) -> torch.Tensor:
    """A seeded uniform-noise image in the graph's input form, for checks and timing
    without a real one."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)) * 255


def image_input(path: str, height: int, width: int) -> torch.Tensor:
    """The image file at ``path`` resized to ``height`` x ``width``, in the graph's
    input form (1, 3, H, W) float BGR 0-255: what an exported detector is checked
    and timed on where a real image exercises every stage."""
    import cv2
    image = cv2.imread(path)
    if image is None:
        raise UnreadableImageError(f'{path}: no such image, or not one OpenCV can read: '
                                   'pass a JPEG or PNG file')
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                threshold: float = 0.5) -> torch.Tensor:
    """Binary image masks ``(N, height, width)`` from the graph's per-box mask
    probabilities, as mmdet pastes them."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    if masks.shape[0] == 0:
        return masks.new_zeros(0, height, width, dtype=torch.bool)
    pasted, _ = _do_paste_mask(masks[:, None], boxes, height, width, skip_empty=False)
    return pasted >= threshold


def as_detections(outputs: Sequence) -> Dict[str, torch.Tensor]:
    """The graph's outputs (torch on any device, or ONNX Runtime's) by name, as
    fp32 CPU tensors; per-box mask probabilities as ``mask_probs``."""
    found = dict(zip(OUTPUT_NAMES, (torch.from_numpy(as_numpy(o)) for o in outputs)))
    if 'masks' in found:
        found['mask_probs'] = found.pop('masks')
    return found


def reference_detections(model: nn.Module, image: torch.Tensor) -> Dict[str, torch.Tensor]:
    """What mmdet's own ``model.predict`` (``rescale=False``) finds in ``image``
    (the graph's input form): boxes, scores, labels and, for Mask R-CNN, binary
    image masks."""
    from mmdet.structures import DetDataSample
    shape = tuple(image.shape[-2:])
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         batch_input_shape=shape, scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image[0]], data_samples=[sample]), False)
        found = model.predict(data['inputs'], data['data_samples'], rescale=False)[0]
    found = found.pred_instances
    result = dict(boxes=found.bboxes, scores=found.scores, labels=found.labels)
    if 'masks' in found:
        result['masks'] = found.masks
    return result


def match_detections(expected: Dict[str, torch.Tensor], got: Dict[str, torch.Tensor],
                     image_shape: Tuple[int, int]) -> Dict[str, object]:
    """Pair each expected detection with an unpaired one of the same label (the
    closest box), and report how many were left unpaired on either side and, over
    the pairs, the worst box difference (pixels), score difference and mask
    agreement: of the per-box probabilities where both sides have them (a random
    mask head hovers around 0.5, where binarising turns noise into pixels), else
    the IoU of ``got``'s masks pasted into the image with ``expected``'s."""
    if 'mask_probs' in got and 'mask_probs' not in expected and 'masks' in expected:
        got = dict(got, masks=paste_masks(got['mask_probs'], got['boxes'].float(),
                                          *image_shape))
    free = list(range(got['boxes'].shape[0]))
    worst = dict(max_box_diff_px=0.0, max_score_diff=0.0)
    if 'mask_probs' in expected:
        worst['max_mask_prob_diff'] = 0.0
    elif 'masks' in expected:
        worst['min_mask_iou'] = 1.0
    unpaired = 0
    for i in expected['scores'].argsort(descending=True).tolist():
        candidates = [j for j in free if int(got['labels'][j]) == int(expected['labels'][i])]
        if not candidates:
            unpaired += 1
            continue
        gaps = [float((got['boxes'][j] - expected['boxes'][i]).abs().max()) for j in candidates]
        j = candidates[min(range(len(gaps)), key=gaps.__getitem__)]
        free.remove(j)
        worst['max_box_diff_px'] = max(worst['max_box_diff_px'], min(gaps))
        worst['max_score_diff'] = max(worst['max_score_diff'],
                                      float((got['scores'][j] - expected['scores'][i]).abs()))
        if 'max_mask_prob_diff' in worst:
            worst['max_mask_prob_diff'] = max(worst['max_mask_prob_diff'], float(
                (got['mask_probs'][j] - expected['mask_probs'][i]).abs().max()))
        elif 'min_mask_iou' in worst:
            a, b = expected['masks'][i].bool(), got['masks'][j].bool()
            union = int((a | b).sum())
            worst['min_mask_iou'] = min(worst['min_mask_iou'],
                                        int((a & b).sum()) / union if union else 1.0)
    return dict(expected=int(expected['scores'].shape[0]), found=int(got['scores'].shape[0]),
                unpaired=unpaired + len(free), **worst)


def detections_agree(report: Dict[str, object]) -> bool:
    """Every detection paired, and each pair within :data:`AGREEMENT`."""
    return (report['unpaired'] == 0 and
            report['max_box_diff_px'] <= AGREEMENT['max_box_diff_px'] and
            report['max_score_diff'] <= AGREEMENT['max_score_diff'] and
            report.get('max_mask_prob_diff', 0.0) <= AGREEMENT['max_mask_prob_diff'] and
            report.get('min_mask_iou', 1.0) >= AGREEMENT['min_mask_iou'])


def format_match(report: Dict[str, object]) -> str:
    """A :func:`match_detections` report in words."""
    masks = (f", min mask IoU {report['min_mask_iou']:.4f}" if 'min_mask_iou' in report
             else f", max mask probability diff {report['max_mask_prob_diff']:.2e}"
             if 'max_mask_prob_diff' in report else '')
    return (f"{report['expected']} detections there, {report['found']} here, "
            f"{report['unpaired']} unpaired, max box diff {report['max_box_diff_px']:.2e} px, "
            f"max score diff {report['max_score_diff']:.2e}{masks}")
