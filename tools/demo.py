"""The main job on the built-in toy dataset (no COCO needed): generates the data if
absent, trains Mask R-CNN with SHViT-S1 on CPU, prints COCO bbox/segm mAP and
saves drawn predictions and a loss curve into the work dir.

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs N]
"""
from efficientvit_det.cli import run
from efficientvit_det.demo import main

if __name__ == '__main__':
    run(main)
