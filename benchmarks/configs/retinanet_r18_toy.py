# Control for benchmarks/toy_learning.py: the toy RetinaNet with mmdet's own
# ResNet-18 + stock FPN (strides 8-128) in place of SHViT-S1 + TransposedFPN; data,
# schedule, optimizer and head as configs/toy/retinanet_shvit_s1_toy.py.
_base_ = ['../../configs/toy/retinanet_shvit_s1_toy.py', './_resnet18.py']

model = dict(
    backbone={{_base_.resnet18_backbone}},
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512],
              out_channels={{_base_.toy_width}},
              start_level=1, add_extra_convs='on_input', num_outs=5))
