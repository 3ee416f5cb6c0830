# Diagnosis arm for benchmarks/toy_learning.py --control: the toy Mask R-CNN with
# SHViT-S1's convolutions initialised as the ResNet-18 control's are (mmdet's ResNet:
# kaiming-normal, fan_out, ReLU gain) instead of PyTorch's default (kaiming-uniform,
# a=sqrt(5), fan_in), which the official backbones keep. Every conv but the
# squeeze-excite gates' feeds a BatchNorm, so the scale does not change the forward
# pass, but under AdamW, whose step does not scale with the weight, it sets how far a
# step moves a weight relative to its size: a from-scratch question, since the
# papers start from ImageNet weights.
_base_ = ['../../configs/toy/mask_rcnn_shvit_s1_toy.py']

model = dict(backbone=dict(init_cfg=[dict(type='Kaiming', layer='Conv2d', mode='fan_out',
                                          nonlinearity='relu', distribution='normal')]))
