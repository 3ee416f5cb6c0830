# Control for benchmarks/toy_learning.py: the toy Mask R-CNN with mmdet's own
# ResNet-18 + stock FPN (strides 4-64) in place of SHViT-S1 + TransposedFPN; data,
# schedule, optimizer and heads as configs/toy/mask_rcnn_shvit_s1_toy.py.
_base_ = ['../../configs/toy/mask_rcnn_shvit_s1_toy.py', './_resnet18.py']

model = dict(
    backbone={{_base_.resnet18_backbone}},
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512],
              out_channels={{_base_.toy_width}}, num_outs=5))
