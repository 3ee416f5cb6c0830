_base_ = './_base_/mask_rcnn_1x.py'
# ImageNet-1k weights of the backbone (the paper's release; a path or URL also
# works). None trains the backbone from scratch, with a logged warning.
PRETRAINED = 'release:efficientvit_m4'

model = dict(
    # the papers' detectors keep the ImageNet windows: 7x7, 7x7, and 4x4 in the last
    # stage (their code caps each window at the stage's size for a 224 input)
    backbone=dict(type='EfficientViT', arch='m4', window_size=(7, 7, 4),
                  init_cfg=dict(type='Pretrained', checkpoint=PRETRAINED)),
    neck=dict(in_channels=[128, 256, 384]))
