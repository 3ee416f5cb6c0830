"""``tools/swap_backbone.py``: any of our backbones, or a timm model, in place of the
backbone of an mmdet / mmseg model config.

    python tools/swap_backbone.py BASE_CONFIG --backbone NAME --out NEW_CONFIG
        [--weights CKPT|release:NAME|none] [--check] [--force]

BASE_CONFIG is a path or a package's own config name
(``mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py``); NAME is one of
ours (``shvit_s1``..``shvit_s4``, ``efficientvit_m0``..``m5``, ``uniform_xs``..``l``)
or ``timm:<model>``. NEW_CONFIG inherits BASE_CONFIG and sets, with a comment
each, what makes the backbone's levels fit the model's neck and heads; the tool
prints the same list. The model is built before anything is written (and with
--check trains one step and predicts on a synthetic image). The weights default
to the backbone's released ImageNet checkpoint where there is one.
"""
import argparse
import os


def build_parser() -> argparse.ArgumentParser:
    """This tool's arguments (the docs' tests parse every command they show with it)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a config path or mmdet::/mmseg:: name')
    parser.add_argument('--backbone', required=True,
                        help='shvit_s4, efficientvit_m4, uniform_l, ... or timm:<model>')
    parser.add_argument('--out', required=True, help='the config file to write')
    parser.add_argument('--weights', help='a checkpoint (path, URL, release:<name>) or none; '
                        "default: the backbone's released ImageNet weights")
    parser.add_argument('--check', action='store_true',
                        help='train one step and predict on a synthetic image')
    parser.add_argument('--force', action='store_true', help='overwrite --out')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.path.isdir(args.out):
        parser.error(f'--out {args.out} is a folder: name the config file to write')
    if os.path.exists(args.out) and os.path.exists(args.config) \
            and os.path.samefile(args.out, args.config):
        parser.error(f'--out {args.out} is the base config itself, which the new one '
                     'inherits: name another file')
    if os.path.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it')

    from ..fileio import atomic_path
    from ..mmlab.config_writer import base_reference, describe_plan, render_config
    from ..mmlab.scope import build_model_from_config
    from ..mmlab.step_check import check_one_step
    from ..mmlab.swap import swapped
    plan, cfg = swapped(args.config, args.backbone, args.weights)
    build_model_from_config(cfg)  # the stride check included: nothing written that fails
    if args.check:
        report = check_one_step(cfg)
        if not report.ok:
            raise SystemExit(f'error: the swapped model does not train: {report}')
        print(f'one step: loss {sum(report.losses.values()):.3f}, gradient into the backbone '
              f'{report.backbone_grad_norm:.3g}; predict: {", ".join(report.prediction)}')
    with atomic_path(args.out) as partial, open(partial, 'w', encoding='utf-8') as f:
        f.write(render_config(plan, base_reference(args.config, args.out)))
    print(f'wrote {args.out}: {args.backbone} in {args.config}')
    for line in describe_plan(plan):
        print(f'  {line}')
    return plan
