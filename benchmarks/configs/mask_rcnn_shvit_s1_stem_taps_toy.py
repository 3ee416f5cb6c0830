# Diagnosis arm for benchmarks/toy_learning.py --control: the toy Mask R-CNN with
# SHViT-S1 whose neck takes its stride-4 and stride-8 levels from the stem's own
# activations at those strides (computed from the image, 32 and 64 channels)
# instead of transposed convolutions of the stride-16 map. Not the papers' design:
# fine levels computed from the image, as the ResNet-18 control's are, but from
# our own backbone (no new parameters but the neck's two stride-4/8 laterals).
_base_ = ['../../configs/toy/mask_rcnn_shvit_s1_toy.py']

model = dict(
    backbone=dict(stem_out_strides=(4, 8)),
    neck=dict(in_channels=[32, 64, 128, 224, 320], in_strides=(4, 8, 16, 32, 64),
              num_extra_trans_convs=0))
