# Control for benchmarks/toy_learning.py --model semantic_fpn: the toy Semantic FPN
# with mmseg's own ResNet-18 + stock FPN (strides 4-32) in place of SHViT-S1 +
# TransposedFPN; data, schedule, optimizer, head and the pyramid's width as
# configs/toy/fpn_shvit_s1_ade20k_toy.py.
_base_ = ['../../configs/toy/fpn_shvit_s1_ade20k_toy.py', './_resnet18.py']

model = dict(
    backbone={{_base_.resnet18_backbone}},
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512],
              out_channels={{_base_.toy_width}}, num_outs=4))
