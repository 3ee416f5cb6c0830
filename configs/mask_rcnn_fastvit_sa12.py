# FastViT-SA12 (the SHViT paper's detection comparison) through timm, in the same
# Mask R-CNN recipe. Strides 4-32, so mmdet's stock FPN is right here.
_base_ = './_base_/mask_rcnn_1x.py'
# True: timm's ImageNet-1k weights from the hub; a path: a local timm checkpoint;
# False trains the backbone from scratch, with a logged warning.
PRETRAINED = True

model = dict(
    backbone=dict(_delete_=True, type='TimmBackbone', model_name='fastvit_sa12',
                  out_indices=(0, 1, 2, 3), norm_eval=True, pretrained=PRETRAINED),
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512], out_channels=256,
              num_outs=5))
