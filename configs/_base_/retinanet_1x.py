# RetinaNet 1x with an efficient ViT backbone: mmdet's own RetinaNet / COCO /
# 1x-schedule bases plus the papers' recipe (DESIGN §5).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(pad_size_divisor=64),
    backbone=dict(_delete_=True, type='SHViT', arch='s4', out_indices=(0, 1, 2),
                  norm_eval=True),
    # strides 16/32/64 -> 8/16/32/64/128: one transposed-conv level above, one
    # stride-2 conv on the last input below (DESIGN §4)
    neck=dict(_delete_=True, type='TransposedFPN', in_channels=[224, 336, 448],
              out_channels=256, num_outs=5, num_extra_trans_convs=1,
              add_extra_convs='on_input'))

optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys={'attention_biases': dict(decay_mult=0.0)}))
auto_scale_lr = dict(enable=True, base_batch_size=16)

# checkpoints written atomically (a killed job never leaves a half-written file);
# RNG states saved in checkpoints so --resume continues the same random stream
default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))
custom_hooks = [dict(type='RNGStateHook')]
