# Semantic FPN + SHViT-S1 on the built-in toy ADE20K-format dataset (1600 training
# images), from scratch on CPU. Only data, image scale, the pyramid's width and the
# schedule differ from configs/fpn_shvit_s1_ade20k.py.
_base_ = '../fpn_shvit_s1_ade20k.py'

data_root = 'data/toy_ade/'
crop_size = (192, 192)
# half mmseg's 256 channels in the pyramid (as the toy detectors): the stride-4 3x3
# convs dominate a step on CPU; the head's own 128 channels are mmseg's
toy_width = 128
model = dict(
    data_preprocessor=dict(size=crop_size),
    # ImageNet-free: no pretrained BatchNorm statistics to preserve, so train them
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None), norm_eval=False),
    neck=dict(out_channels=toy_width),
    decode_head=dict(in_channels=[toy_width] * 4))

train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 192), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 192), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=8, num_workers=1,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
# mIoU plus each class's IoU (IoU.<class>: the toy's background, circle, rectangle,
# triangle are ADE20K's wall, building, sky, floor) in the logged and returned metrics
val_evaluator = dict(type='ClassIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# schedule: 300 iterations at batch 8 (1.5 passes over the training images, ~8 min
# on 2 cores) at a from-scratch learning rate (no lr auto-scaling), warm-up, poly decay
max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=50, end=max_iters, by_epoch=False),
]
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=100, max_keep_ckpts=2))
