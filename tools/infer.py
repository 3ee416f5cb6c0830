"""Predict on your own images: an image, a folder of images or a video.

    python tools/infer.py INPUT CONFIG --weights CKPT [--out-dir D] [--score-thr T]
        [--device cpu|cuda] [--ann-file COCO_JSON]

Writes drawn predictions (D/vis/*.jpg, or D/<video>.mp4) and, for detectors,
D/predictions.json in COCO results format (every detection, whatever its score;
with --ann-file, image and category ids are taken from that file so the results
can be scored against it), for segmentors label maps D/pred/*.png. Unreadable
images are skipped and listed at the end.
"""
import argparse
import sys

from efficientvit_det.cli import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='an image, a folder of images or a video file')
    parser.add_argument('config')
    parser.add_argument('--weights', required=True,
                        help='checkpoint: a path, URL or release:<name>, ours or the papers\' '
                        'layout; it must fit the config exactly')
    parser.add_argument('--out-dir', default='outputs', help='where results go (default: outputs)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections drawn from this score up (default 0.3)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--ann-file', help='COCO annotation file whose image / category ids '
                        'the predictions should use')
    args = parser.parse_args(argv)
    from efficientvit_det.inference import build_inferencer, run_inference
    inferencer = build_inferencer(args.config, args.weights, args.device)
    summary = run_inference(inferencer, args.input, args.out_dir, args.score_thr, args.ann_file)
    print(f'\n{summary["images"]} image(s) -> {summary["out_dir"]}'
          + (f'; {summary["detections"]} detections in {summary["predictions"]}'
             if 'predictions' in summary else ''))
    if summary['skipped']:
        print(f'skipped {len(summary["skipped"])} unreadable image(s): '
              + ', '.join(summary['skipped']), file=sys.stderr)
    return summary


if __name__ == '__main__':
    run(main)
