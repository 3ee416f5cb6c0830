"""``tools/infer.py``: predict on your own images: an image, a folder of images or a video.

    python tools/infer.py INPUT CONFIG_OR_NAME [--weights CKPT] [--out-dir D]
        [--score-thr T] [--device cpu|cuda] [--ann-file COCO_JSON]

CONFIG_OR_NAME is a config file, or a name from the model index
(model-index.yml, e.g. mask_rcnn_shvit_s4), whose released weights are used when
--weights is not given.

Writes drawn predictions (D/vis/*.jpg, or D/<video>.mp4) and, for detectors,
D/predictions.json in COCO results format (every detection, whatever its score;
with --ann-file, image and category ids are taken from that file so the results
can be scored against it), for segmentors label maps D/pred/*.png. Unreadable
images are skipped and listed at the end.
"""
import argparse
import os
import sys

from .common import fraction


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='an image, a folder of images or a video file')
    parser.add_argument('config', help='a config file or a model-index name')
    parser.add_argument('--weights',
                        help='checkpoint: a path, URL or release:<name>, ours or the papers\' '
                        'layout; it must fit the config exactly (default: the released '
                        'weights of a model-index name)')
    parser.add_argument('--out-dir', default='outputs', help='where results go (default: outputs)')
    parser.add_argument('--score-thr', type=fraction, default=0.3,
                        help='detections drawn from this score up (default 0.3)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--ann-file', help='COCO annotation file whose image / category ids '
                        'the predictions should use')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..errors import MissingWeightsError
    from ..mmlab.inference import build_inferencer, list_inputs, run_inference
    import torch
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f'--device {args.device}: not a device; cpu, cuda or cuda:N')
    if device.type not in ('cpu', 'cuda'):
        parser.error(f'--device {args.device}: this tool runs on cpu, cuda or cuda:N')
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            parser.error(f'--device {args.device}: CUDA is not available here (torch '
                         f'{torch.__version__}); use --device cpu')
        if device.index is not None and device.index >= torch.cuda.device_count():
            parser.error(f'--device {args.device}: this machine has '
                         f'{torch.cuda.device_count()} GPU(s), cuda:0 to '
                         f'cuda:{torch.cuda.device_count() - 1}')
    try:
        list_inputs(args.input)  # a typo is found before the model is built
    except FileNotFoundError as err:
        parser.error(str(err))
    if args.ann_file and not os.path.isfile(args.ann_file):
        parser.error(f'--ann-file {args.ann_file}: no such file (a COCO annotation JSON)')
    try:
        inferencer = build_inferencer(args.config, args.weights, args.device)
    except MissingWeightsError as err:
        parser.error(str(err))
    summary = run_inference(inferencer, args.input, args.out_dir, args.score_thr, args.ann_file)
    print(f'\n{summary["images"]} image(s) -> {summary["out_dir"]}'
          + (f'; {summary["detections"]} detections in {summary["predictions"]}'
             if 'predictions' in summary else ''))
    if summary['not_in_ann_file']:
        print(f'{len(summary["not_in_ann_file"])} image(s) not in {args.ann_file}, drawn but '
              'left out of the JSON: ' + ', '.join(summary['not_in_ann_file']), file=sys.stderr)
    if summary['skipped']:
        print(f'skipped {len(summary["skipped"])} unreadable image(s): '
              + ', '.join(summary['skipped']), file=sys.stderr)
    return summary
