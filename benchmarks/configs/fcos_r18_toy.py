# mmdet's own FCOS with mmdet's ResNet-18 + FPN, from scratch on the toy set: the
# control of `benchmarks/toy_learning.py --model fcos`, and the config SHViT-S1 is
# swapped into (fcos_shvit_s1_toy.py beside this file, written by
# tools/swap_backbone.py). Model and head from mmdet's FCOS config; only the data,
# the neck / head width, the input normalisation (ImageNet RGB, as every toy arm)
# and the toy recipe differ.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
          '../../configs/toy/_coco_toy.py', './_resnet18.py']
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

width = {{_base_.toy_width}}
model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    backbone={{_base_.resnet18_backbone}},
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
    bbox_head=dict(num_classes=3, in_channels=width, feat_channels=width))

train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_bbox_evaluator}}
test_evaluator = val_evaluator

# the toy recipe of our detectors (AdamW from scratch, three passes like the toy
# RetinaNet: a dense head needs them), with FCOS's gradient clipping
train_cfg = {{_base_.toy_retinanet_train_cfg}}
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False)
param_scheduler = {{_base_.toy_retinanet_param_scheduler}}
default_hooks = {{_base_.toy_default_hooks}}
custom_hooks = {{_base_.toy_custom_hooks}}
