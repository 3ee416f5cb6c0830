"""``tools/convert_checkpoint.py``: convert a checkpoint to efficientvit_det's layout,
validated by loading it strictly.

    python tools/convert_checkpoint.py SRC DST --backbone shvit_s4 [--force]
    python tools/convert_checkpoint.py SRC DST --config configs/mask_rcnn_shvit_s4.py [--force]

--backbone: a backbone checkpoint (official release, timm, or the backbone of a
whole mmdet/mmseg model); the classification head is dropped and
attention-bias tables are resized to the backbone's 7x7 windows.
--config: a whole detector / segmentor, e.g. the papers' official COCO
releases (mmdet 2.x layout), for the model the config builds; the result is an
mmengine checkpoint that ``load_from`` and ``tools/test.py`` take.

SRC may also be release:<name> (a backbone like shvit_s4 or a detector like
maskrcnn_shvit_s4_1x_coco), hub:<backbone> or a URL. The output holds
``{"state_dict": ..., "meta": {...}}``. DST is never overwritten without --force,
and is written atomically.
"""
import argparse
import os

import torch

from ..checkpoints import load_backbone_checkpoint, load_model_checkpoint
from ..fileio import atomic_path
from ..models import build_backbone


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src')
    parser.add_argument('dst')
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--backbone', help='a backbone name, e.g. shvit_s4, efficientvit_m4')
    target.add_argument('--config', help='a detector / segmentor config the whole model is for')
    parser.add_argument('--force', action='store_true', help='overwrite DST')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.path.isdir(args.dst):
        parser.error(f'{args.dst} is a folder: name the checkpoint file to write')
    if os.path.exists(args.dst) and not args.force:
        parser.error(f'{args.dst} exists; pass --force to overwrite it')
    if args.config:
        from ..mmlab.scope import build_model_from_config
        model = build_model_from_config(args.config)
        layout = load_model_checkpoint(model, args.src)  # strict: the proof that it fits
        made_for = dict(config=args.config)
    else:
        model = build_backbone(args.backbone)
        layout = load_backbone_checkpoint(model, args.src)
        made_for = dict(backbone=args.backbone)
    state = model.state_dict()
    with atomic_path(args.dst) as partial:
        torch.save(dict(state_dict=state, meta=dict(made_for, source=args.src, layout=layout)),
                   partial)
    print(f'{args.src} ({layout} layout) -> {args.dst} ({len(state)} tensors, '
          f'efficientvit_det layout for {args.config or args.backbone})')
