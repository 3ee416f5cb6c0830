# RetinaNet 1x with an efficient ViT backbone: mmdet's own RetinaNet / COCO /
# 1x-schedule bases plus the recipe of the papers' public COCO detectors, value for
# value (see mask_rcnn_1x.py beside this file for what each setting means).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(_delete_=True, type='SHViT', arch='s4', out_indices=(0, 1, 2),
                  norm_eval=True),
    # strides 16/32/64 -> 8/16/32/64/128 for the anchors: one transposed conv above the
    # finest lateral, one 3x3 stride-2 conv on the raw stride-64 backbone output below
    neck=dict(_delete_=True, type='TransposedFPN', in_channels=[224, 336, 448],
              out_channels=256, num_outs=5, num_extra_trans_convs=1,
              add_extra_convs='on_input'))

optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.0)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmdet's COCO detection training pipeline with our image loader, which names an unreadable image
# and draws another sample instead of crashing a dataloader worker (the test pipeline
# keeps mmcv's loader, which mmdet's inferencers look for)
train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# checkpoints written atomically, then last_checkpoint, then outdated ones deleted
# (a killed job never leaves a half-written file or loses a complete one);
# RNG states saved in checkpoints so --resume continues the same random stream;
# load_from / --resume checkpoints must fit the model exactly
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook',
                                     backend_args=dict(backend='atomic_local')))
custom_hooks = [dict(type='RNGStateHook'), dict(type='StrictLoadHook'),
                dict(type='FiniteLossHook')]
