"""What is measured and exported: one kind of object whatever the model is.

A :class:`Target` holds the model to run (a backbone, an OpenMMLab model in tensor
mode, or a whole detector as a :class:`DetectorGraph`) and knows what differs
between them: the example input it takes, how its outputs are checked against
eager fp32's, its stages, its output names and whether it takes batches. The
latency engine and the ONNX exporter ask the target; neither tests a model's type.
"""
import math
import os
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models.checking import randomize_for_checking_
from .detector_graph import (DetectorGraph, as_detections, detections_agree, format_match,
                             match_detections, noise_image)
from .memory import check_fits_in_memory
from .onnx_export import compare_detections_with_onnxruntime, compare_with_onnxruntime
from .outputs import max_relative_error

#: largest error vs eager fp32 (relative to the largest output value) a mode may show
#: and still count as computing the same features; fp32 leaves room for TF32 on GPUs
TOLERANCE = {'fp32': 5e-3, 'fp16': 5e-2, 'bf16': 1e-1}


class Target:
    """A model whose outputs are tensors (features, logits), compared by their
    largest relative error; it takes batches of normalised images."""

    takes_batches = True

    def __init__(self, name: str, kind: str, model: nn.Module):
        self.name, self.kind, self.model = name, kind, model

    @property
    def output_names(self) -> Optional[List[str]]:
        return None  # feat0, feat1, ... in an export

    def example(self, batch: int, height: int, width: int) -> torch.Tensor:
        """The seeded input a row is checked and timed on (and its MACs counted on)."""
        return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))

    def check_fits(self, batch: int, height: int, width: int, device: str = 'cpu') -> None:
        """Refuse in one line, before allocating, a size at which one tensor of the
        model's would not fit in the device's free memory."""
        check_fits_in_memory(self.model, (batch if self.takes_batches else 1, 3, height, width),
                             self.name, device)

    def disagreement(self, reference: Sequence, outputs: Sequence, precision: str,
                     image_shape: Tuple[int, int]) -> Tuple[Optional[float], Optional[str]]:
        """(max relative error, why ``outputs`` do not count as eager fp32's
        ``reference``, or None)."""
        error = max_relative_error(reference, outputs)
        if error <= TOLERANCE[precision]:
            return error, None
        return error, (f'outputs differ from eager fp32 by {error:.3g} (tolerance '
                       f'{TOLERANCE[precision]:g})' if math.isfinite(error) else
                       'outputs differ from eager fp32 in number or shape, or are inf/NaN')

    def stages(self) -> Optional[List[Tuple[str, Callable]]]:
        """Named stages timed one by one in the eager row, or None."""
        return None

    def validate_export(self, path: str, inputs: Sequence[torch.Tensor],
                        trained: bool = False) -> List[dict]:
        """ONNX Runtime on ``path`` against PyTorch, one report per input and output."""
        return compare_with_onnxruntime(self.model, path, inputs)

    def randomize_(self) -> None:
        """Non-trivial random weights, for checks that see every part of the model."""
        randomize_for_checking_(self.model)

    def fuse(self) -> 'Target':
        if hasattr(self.model, 'fuse'):
            self.model.fuse()
        return self


class DetectorTarget(Target):
    """A whole detector from one image to final detections: detections are paired
    by label and box (modes may list them in another order), not compared as
    tensors."""

    takes_batches = False

    def __init__(self, name: str, kind: str, model: nn.Module,
                 image: Optional[torch.Tensor] = None):
        super().__init__(name, kind, model)
        #: the image rows are checked and timed on at its size (else noise): a trained
        #: detector finds objects in a real image, so every stage does its full work
        self.image = image

    @property
    def output_names(self) -> List[str]:
        return self.model.output_names

    def example(self, batch: int, height: int, width: int) -> torch.Tensor:
        if self.image is not None and tuple(self.image.shape[-2:]) == (height, width):
            return self.image
        return noise_image(height, width)

    def disagreement(self, reference, outputs, precision, image_shape):
        report = match_detections(as_detections(reference), as_detections(outputs),
                                  image_shape)
        if detections_agree(report):
            return None, None
        return None, f'detections differ from eager fp32 ({format_match(report)})'

    def stages(self):
        return self.model.stages()

    def randomize_(self) -> None:
        super().randomize_()
        self.model.sharpen_random_classifier_()

    def validate_export(self, path, inputs, trained=False):
        """Against the PyTorch graph and, for trained weights, mmdet's ``predict``."""
        return compare_detections_with_onnxruntime(self.model, path, inputs, trained)


class TensorModeModel(nn.Module):
    """Segmentor (or detector, for counting its MACs) without pre- and post-processing
    (``mode='tensor'``).

    Two-stage detectors need image metadata even there (the RPN clips and
    filters proposals to the image), so detectors get one sample per image
    saying the input is the unscaled, unpadded image.
    """

    def __init__(self, model, sample_type=None):
        super().__init__()
        self.model = model
        self.sample_type = sample_type  # mmdet's DetDataSample for detectors

    def _data_samples(self, x):
        if self.sample_type is None:
            return None
        shape = tuple(x.shape[-2:])
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                    batch_input_shape=shape, scale_factor=(1.0, 1.0))
        return [self.sample_type(metainfo=meta) for _ in range(x.shape[0])]

    def forward(self, x):
        return self.model(x, self._data_samples(x), mode='tensor')

    def fuse(self):
        if hasattr(self.model.backbone, 'fuse'):
            self.model.backbone.fuse()
        return self


def config_name(config: str) -> str:
    """A config's rows are named by its file name (``configs/x.py`` -> ``x``)."""
    return os.path.splitext(os.path.basename(config))[0]


def build_target(backbone: Optional[str] = None, config: Optional[str] = None,
                 whole: bool = False, checkpoint: Optional[str] = None,
                 post_processing: bool = True, cfg_options: Optional[dict] = None,
                 image: Optional[torch.Tensor] = None) -> Target:
    """Our backbone name, ``timm:<name>``, or a config (its backbone, or with
    ``whole`` the whole model: a detector from image to final detections, NMS and
    mask head included (:class:`DetectorGraph`; without ``post_processing``,
    mmdet's tensor mode), a segmentor to its logits), in eval mode. With
    ``checkpoint`` the model gets those weights (strictly: a backbone checkpoint for
    a backbone name, a whole-model one for a config); otherwise random non-trivial
    ones (seeded: the same on every call), so that the checks of the outputs (modes
    against eager, ONNX against PyTorch) see every part of it. Nothing is fetched
    that was not asked for: a config's pretrained backbone weights are not. ``image``
    (a whole detector's): the image its rows are checked and timed on at that size."""
    with torch.random.fork_rng(devices=[]):  # the same random weights on every call
        torch.manual_seed(0)
        target = _build(backbone, config, whole, checkpoint, post_processing,
                        cfg_options or {}, image)
    if checkpoint is None:
        target.randomize_()
    target.model.eval()
    return target


def _build(backbone, config, whole, checkpoint, post_processing, cfg_options,
           image) -> Target:
    if backbone:
        if backbone.startswith('timm:'):
            import timm
            if checkpoint:
                raise ValueError('--checkpoint takes our backbones and configs, not timm:')
            name = backbone[len('timm:'):]
            return Target(backbone, 'backbone',
                          timm.create_model(name, features_only=True, pretrained=False))
        from ..checkpoints import load_backbone_checkpoint
        from ..models import build_backbone
        model = build_backbone(backbone)
        if checkpoint:
            load_backbone_checkpoint(model, checkpoint)
        return Target(backbone, 'backbone', model)
    # the OpenMMLab stack is needed from here on only
    from ..checkpoints import load_model_checkpoint
    from ..mmlab.scope import (build_from_config, build_model_from_config, config_scope,
                               read_config, without_pretrained_weights)
    cfg = read_config(config)
    cfg.merge_from_dict(cfg_options)
    name = config_name(config)
    if not whole and not checkpoint:  # the backbone alone: nothing else is built
        return Target(f'{name}:backbone', 'backbone', build_from_config(
            cfg, 'MODELS', without_pretrained_weights(cfg.model.backbone)))
    model = build_model_from_config(cfg)
    if checkpoint:
        load_model_checkpoint(model, checkpoint)
    if not whole:
        return Target(f'{name}:backbone', 'backbone', model.backbone)
    if config_scope(cfg) != 'mmdet':
        return Target(name, 'whole', TensorModeModel(model))
    if post_processing:
        return DetectorTarget(name, 'whole', DetectorGraph(model), image)
    from mmdet.structures import DetDataSample
    return Target(name, 'whole', TensorModeModel(model, DetDataSample))
