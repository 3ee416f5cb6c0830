_base_ = './_base_/mask_rcnn_1x.py'
# ImageNet-1k weights of the backbone (the paper's release; a path or URL also
# works). None trains the backbone from scratch, with a logged warning.
PRETRAINED = 'release:efficientvit_m2'

model = dict(
    # 7x7 attention windows in every stage, as the papers' detectors: the ImageNet
    # release's 4x4 last-stage bias tables are resized bicubically on load (logged)
    backbone=dict(type='EfficientViT', arch='m2',
                  init_cfg=dict(type='Pretrained', checkpoint=PRETRAINED)),
    neck=dict(in_channels=[128, 192, 224]))
