# Mask R-CNN 1x with an efficient ViT backbone: mmdet's own Mask R-CNN / COCO /
# 1x-schedule bases plus the papers' recipe (DESIGN §5).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

model = dict(
    # pad batches to the backbone's coarsest stride
    data_preprocessor=dict(pad_size_divisor=64),
    backbone=dict(_delete_=True, type='SHViT', arch='s4', out_indices=(0, 1, 2),
                  norm_eval=True),  # frozen BatchNorm statistics, as the public recipes
    # strides 16/32/64 -> 4/8/16/32/64 (two transposed-conv levels, DESIGN §4)
    neck=dict(_delete_=True, type='TransposedFPN', in_channels=[224, 336, 448],
              out_channels=256, num_outs=5, num_extra_trans_convs=2))

# AdamW lr 1e-4 for 16 images (8 GPUs x 2), no decay on norms and attention biases;
# 12 epochs, steps 8/11, linear warm-up over 500 iterations from 0.001 (mmdet's 1x).
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys={'attention_biases': dict(decay_mult=0.0)}))
# the lr above is for a total batch of 16; other batch sizes scale it linearly
auto_scale_lr = dict(enable=True, base_batch_size=16)

# checkpoints written atomically (a killed job never leaves a half-written file);
# RNG states saved in checkpoints so --resume continues the same random stream
default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))
custom_hooks = [dict(type='RNGStateHook')]
