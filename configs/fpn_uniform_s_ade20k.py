_base_ = './_base_/fpn_ade20k_40k.py'
# No ImageNet weights are released for UniForm: set a path to your own
# checkpoint here. None trains the backbone from scratch, with a logged warning.
PRETRAINED = None

model = dict(
    backbone=dict(type='UniForm', arch='s',
                  init_cfg=dict(type='Pretrained', checkpoint=PRETRAINED)),
    neck=dict(in_channels=[128, 144, 192]))
