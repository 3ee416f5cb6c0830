"""``tools/export_onnx.py``: export a backbone, or a whole detector / segmentor, to ONNX
and validate it
against PyTorch with ONNX Runtime in the same run.

    python tools/export_onnx.py --backbone shvit_s4 --shape 512x512 [--dynamic] [--fused]
        [--out work_dirs/onnx/shvit_s4.onnx]
    python tools/export_onnx.py --config configs/mask_rcnn_shvit_s4.py --whole \
        --checkpoint CKPT --shape 800x1333 [--image IMAGE]

--dynamic marks batch/height/width dynamic (a whole detector: height/width) and
checks a second shape too (72 rows and 40 columns more: other padding too). A
whole detector goes from image to final detections, NMS and RoIAlign included
(NonMaxSuppression, RoiAlign: opset >= 16), one image: input ``input`` (1, 3, H, W)
float BGR 0-255, resized (the graph normalises and pads it as mmdet does); outputs
``boxes`` (N, 4) x1y1x2y2 in input pixels, ``scores``, ``labels`` and for Mask R-CNN
``masks`` (N, 28, 28) probabilities inside each box. Its detections on the image
(``--image``, resized to the shape; default uniform noise; with --dynamic at both
shapes) are paired with those of the graph in PyTorch and, with --checkpoint, of
mmdet's own ``model.predict`` (random weights make near-equal scores, whose ties
mmdet breaks its own way). OUT is replaced only by an export that matches; one
that does not is kept beside it as OUT.invalid.onnx for inspection (exit 1).
"""
import argparse
import os
import sys

import torch

from ..deploy.detector_graph import image_input, noise_image
from ..deploy.onnx_export import describe, export_checked
from ..deploy.targets import build_target
from ..errors import ExportMismatch, ExportUnsupported, UnreadableImageError
from ..fileio import check_writable
from .common import add_cfg_options, at_least, parse_shape


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--backbone')
    target.add_argument('--config')
    parser.add_argument('--whole', action='store_true')
    parser.add_argument('--shape', type=parse_shape, default=(512, 512))
    parser.add_argument('--batch', type=at_least(1), default=1)
    parser.add_argument('--dynamic', action='store_true')
    parser.add_argument('--fused', action='store_true', help='fold Conv+BN first (deployment)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--checkpoint', help='export and validate these weights (a backbone '
                        'checkpoint with --backbone, a whole-model one with --config); '
                        'default: random non-trivial weights, for the validation to see '
                        'every part of the model')
    add_cfg_options(parser, 'with --config: override config keys, e.g. a deployment '
                    'test_cfg: model.test_cfg.rpn.max_per_img=300')
    parser.add_argument('--image', help='whole detectors: validate on this image (resized '
                        'to --shape) rather than on noise; a trained checkpoint on a real '
                        'image exercises every stage')
    parser.add_argument('--out')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cfg_options and not args.config:
        parser.error('--cfg-options needs --config')
    target = build_target(backbone=args.backbone, config=args.config, whole=args.whole,
                          checkpoint=args.checkpoint, cfg_options=args.cfg_options)
    out = args.out or os.path.join('work_dirs', 'onnx', target.name.replace(':', '_') + '.onnx')
    try:  # found out now, not after the export
        check_writable(out)
    except OSError as err:
        parser.error(f'--out: {err}')
    if args.fused:
        target.fuse()
    height, width = args.shape
    second = (height + 72, width + 40)  # a --dynamic export's check: not multiples of 32
    target.check_fits(args.batch + args.dynamic, *(second if args.dynamic else args.shape))
    if not target.takes_batches:
        if args.batch != 1:
            parser.error('a whole detector takes one image: --batch 1')
        inputs = [detector_input(parser, args.image, height, width)]
        if args.dynamic:
            inputs.append(detector_input(parser, args.image, *second))
    else:
        inputs = [torch.randn(args.batch, 3, height, width)]
        if args.dynamic:
            inputs.append(torch.randn(args.batch + 1, 3, *second))
    try:  # OUT is replaced only by a matching export
        reports = export_checked(target, inputs, out, dynamic=args.dynamic, opset=args.opset,
                                 trained=args.checkpoint is not None)
    except ExportUnsupported as err:
        print(f'cannot export {target.name}: {err}', file=sys.stderr)
        return 2
    except ExportMismatch as err:
        print('\n'.join(describe(report) for report in err.reports))
        print(err)
        return 1
    print('\n'.join(describe(report) for report in reports))
    print(f'wrote {out}')
    return 0


def detector_input(parser, image_path, height, width):
    """The image a whole detector is validated on: the file, resized, or noise."""
    if image_path is None:
        return noise_image(height, width)
    try:
        return image_input(image_path, height, width)
    except UnreadableImageError as err:
        parser.error(f'--image {err}')
