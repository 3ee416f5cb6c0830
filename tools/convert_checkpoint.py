"""Convert a backbone checkpoint (official release, timm, or a whole mmdet/mmseg
model) to efficientvit_det's layout, validated by loading it strictly.

    python tools/convert_checkpoint.py SRC DST --backbone shvit_s4 [--force]

SRC may also be release:<backbone>, hub:<backbone> or a URL. The output holds
``{"state_dict": ..., "meta": {...}}``; the classification head is dropped and
attention-bias tables are resized to the backbone's 7x7 windows. DST is never
overwritten without --force, and is written atomically.
"""
import argparse
import os
import sys
import tempfile

import torch

from efficientvit_det.checkpoints import (adapt_to_model, convert_state_dict, fetch_checkpoint,
                                          load_checkpoint_file, unwrap_state_dict)
from efficientvit_det.models import build_backbone


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--backbone', required=True, help='e.g. shvit_s4, efficientvit_m4')
    parser.add_argument('--force', action='store_true', help='overwrite DST')
    args = parser.parse_args(argv)
    if os.path.exists(args.dst) and not args.force:
        parser.error(f'{args.dst} exists; pass --force to overwrite it')
    model = build_backbone(args.backbone)
    path = fetch_checkpoint(args.src)
    state, layout = convert_state_dict(unwrap_state_dict(load_checkpoint_file(path)))
    state = adapt_to_model(model, state, layout, source=path)
    model.load_state_dict(state, strict=True)  # the proof that it fits
    folder = os.path.dirname(os.path.abspath(args.dst))
    os.makedirs(folder, exist_ok=True)
    # torch's zip writer names the archive after the file: no leading dot
    handle, partial = tempfile.mkstemp(dir=folder, prefix=os.path.basename(args.dst) + '.partial-')
    os.close(handle)
    try:
        torch.save(dict(state_dict=model.state_dict(),
                        meta=dict(backbone=args.backbone, source=args.src, layout=layout)),
                   partial)
        os.replace(partial, args.dst)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    print(f'{args.src} ({layout} layout) -> {args.dst} ({len(state)} tensors, '
          f'efficientvit_det layout for {args.backbone})')


if __name__ == '__main__':
    sys.exit(main())
