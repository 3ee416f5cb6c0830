# Diagnosis control for benchmarks/toy_learning.py --control: mmdet's ResNet-18
# feeding our neck from its stride-16 and stride-32 stages only, as our backbones
# feed it (their first feature map has stride 16). Its stride-4 and stride-8 levels
# are then transposed convolutions of the stride-16 map, as ours are; stride 64 is
# max-pooled, as in the stock FPN. Everything else as the ResNet-18 control.
_base_ = ['./mask_rcnn_r18_toy.py']

model = dict(
    backbone=dict(out_indices=(2, 3)),
    neck=dict(_delete_=True, type='TransposedFPN', in_channels=[256, 512], in_strides=(16, 32),
              out_channels={{_base_.toy_width}}, num_outs=5, num_extra_trans_convs=2))
