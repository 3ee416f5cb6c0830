_base_ = './_base_/upernet_ade20k_160k.py'
# ImageNet-1k weights of the backbone (the paper's release; a path or URL also
# works). None trains the backbone from scratch, with a logged warning.
PRETRAINED = 'release:shvit_s4'

model = dict(
    backbone=dict(type='SHViT', arch='s4',
                  init_cfg=dict(type='Pretrained', checkpoint=PRETRAINED)),
    neck=dict(in_channels=[224, 336, 448]))
