# RetinaNet + SHViT-S1 on the built-in toy dataset, from scratch on CPU. Only
# data, image scale, schedule (three passes: _coco_toy.py) and the neck / head width
# (_coco_toy.py's toy_width) differ from configs/retinanet_shvit_s1.py.
_base_ = ['../retinanet_shvit_s1.py', './_coco_toy.py']

width = {{_base_.toy_width}}
model = dict(
    # ImageNet-free: no pretrained BatchNorm statistics to preserve, so train them
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None), norm_eval=False),
    neck=dict(out_channels=width),
    bbox_head=dict(num_classes=3, in_channels=width, feat_channels=width))

train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_bbox_evaluator}}
test_evaluator = val_evaluator

train_cfg = {{_base_.toy_retinanet_train_cfg}}
optim_wrapper = {{_base_.toy_optim_wrapper}}
auto_scale_lr = dict(enable=False)
param_scheduler = {{_base_.toy_retinanet_param_scheduler}}
default_hooks = {{_base_.toy_default_hooks}}
custom_hooks = {{_base_.toy_custom_hooks}}
