# RetinaNet + SHViT-S1 on the built-in toy dataset, from scratch on CPU. Only
# data, image scale and schedule differ from configs/retinanet_shvit_s1.py.
_base_ = ['../retinanet_shvit_s1.py', './_coco_toy.py']

model = dict(
    # ImageNet-free: no pretrained BatchNorm statistics to preserve, so train them
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None), norm_eval=False),
    bbox_head=dict(num_classes=3))

train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_bbox_evaluator}}
test_evaluator = val_evaluator

# schedule: a short run at a from-scratch learning rate (no lr auto-scaling)
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9, 11]),
]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=4, max_keep_ckpts=2))
custom_hooks = [dict(type='RNGStateHook'), dict(type='RankConsistencyHook')]
