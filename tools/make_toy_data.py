"""Write the built-in toy datasets where the toy configs expect them.

    python tools/make_toy_data.py [--coco data/toy_coco] [--ade data/toy_ade] [--seed 0]
"""
import argparse

from efficientvit_det.toy_data import make_ade_toy, make_coco_toy

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--coco', default='data/toy_coco')
    parser.add_argument('--ade', default='data/toy_ade')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    paths = make_coco_toy(args.coco, seed=args.seed)
    print(f'COCO-format toy dataset: {args.coco} ({paths["train"]}, {paths["val"]})')
    make_ade_toy(args.ade, seed=args.seed)
    print(f'ADE20K-format toy dataset: {args.ade}')
