_base_ = './_base_/fpn_ade20k_40k.py'
# ImageNet-1k weights of the backbone (the paper's release; a path or URL also
# works). None trains the backbone from scratch, with a logged warning.
PRETRAINED = 'release:efficientvit_m4'

model = dict(
    backbone=dict(type='EfficientViT', arch='m4',
                  init_cfg=dict(type='Pretrained', checkpoint=PRETRAINED)),
    neck=dict(in_channels=[128, 256, 384]))
