# Mask R-CNN 1x with an efficient ViT backbone: mmdet's own Mask R-CNN / COCO /
# 1x-schedule bases plus the recipe of the papers' public COCO detectors (SHViT
# and EfficientViT share it, mmdet 2.x), value for value; every setting not
# named here is mmdet's default, as in theirs.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

model = dict(
    # pad batches to a multiple of 32 (theirs): the stride-16 map stays exact, so the
    # transposed levels (strides 8, 4) line up with the image; the stride-64 map is
    # rounded up by the convs, and every head reads the map sizes it is given
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(_delete_=True, type='SHViT', arch='s4', out_indices=(0, 1, 2),
                  norm_eval=True),  # frozen BatchNorm statistics, nothing frozen otherwise
    # The backbones emit strides 16/32/64 only; the RPN and RoI heads read 4-64. Two
    # 2x2 stride-2 transposed convs above the finest lateral make strides 8 and 4 (a
    # stock FPN here trains without learning anything).
    neck=dict(_delete_=True, type='TransposedFPN', in_channels=[224, 336, 448],
              out_channels=256, num_outs=5, num_extra_trans_convs=2))

# AdamW lr 1e-4 for 16 images (8 GPUs x 2), weight decay 0.05 on every parameter
# (norm layers and biases included) except the attention-bias tables; no gradient
# clipping. Schedule from mmdet's 1x base: 12 epochs, steps 8/11, linear warm-up over
# 500 iterations from 0.001.
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.0)}))
# The lr above is for a total batch of 16 and is used as it is (mmdet's convention):
# `tools/train.py --auto-scale-lr` scales it linearly to your GPUs x batch size.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmdet's COCO training pipeline with our image loader, which names an unreadable image
# and draws another sample instead of crashing a dataloader worker (the test pipeline
# keeps mmcv's loader, which mmdet's inferencers look for)
train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
