# The headline Mask R-CNN + SHViT-S1 on the built-in toy dataset, trained from
# scratch on CPU in minutes. Only data, image scale and schedule differ from
# configs/mask_rcnn_shvit_s1.py.
_base_ = ['../mask_rcnn_shvit_s1.py', './_coco_toy.py']

# CPU budget: mmcv's CPU RoIAlign is single-threaded and samples adaptively
# (sampling_ratio=0), and 512 sampled RoIs per image (up to 128 through the mask
# head) dominate a step; a fixed 2x2 sampling and 64 RoIs cut the step time by 2.5x
# without changing the model.
roi_layer = dict(type='RoIAlign', output_size=7, sampling_ratio=2)
model = dict(
    # ImageNet-free: no pretrained BatchNorm statistics to preserve, so train them
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None), norm_eval=False),
    roi_head=dict(bbox_roi_extractor=dict(roi_layer=roi_layer),
                  mask_roi_extractor=dict(roi_layer=dict(roi_layer, output_size=14)),
                  bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
    train_cfg=dict(rcnn=dict(sampler=dict(num=64))))

train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
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
# after distributed runs: verify every rank ends with the same weights
custom_hooks = [dict(type='RNGStateHook'), dict(type='RankConsistencyHook')]
