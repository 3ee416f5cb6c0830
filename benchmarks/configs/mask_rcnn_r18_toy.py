# Control for benchmarks/toy_learning.py: the toy Mask R-CNN with mmdet's own
# ResNet-18 + stock FPN (strides 4-64) in place of SHViT-S1 + TransposedFPN; data,
# schedule, optimizer and heads as configs/toy/mask_rcnn_shvit_s1_toy.py.
_base_ = '../../configs/toy/mask_rcnn_shvit_s1_toy.py'

model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=18, num_stages=4,
                  out_indices=(0, 1, 2, 3), frozen_stages=-1, style='pytorch',
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),  # from scratch, mmdet's default init
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512], out_channels=256,
              num_outs=5))
