# UperNet on ADE20K with an efficient ViT backbone: mmseg's own UperNet / ADE20K /
# 160k-schedule bases with the usual transformer-backbone recipe.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py',
    './ade20k_train_pipeline.py'
]
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=64)),
    pretrained=None,
    backbone=dict(_delete_=True, type='SHViT', arch='s4', out_indices=(0, 1, 2),
                  norm_eval=True),
    # UPerHead reads strides 4/8/16/32: the transposed-conv pyramid supplies them
    neck=dict(type='TransposedFPN', in_channels=[224, 336, 448], out_channels=256,
              num_outs=4, num_extra_trans_convs=2),
    decode_head=dict(in_channels=[256, 256, 256, 256], num_classes=150),
    auxiliary_head=dict(in_channels=256, in_index=2, num_classes=150))

# AdamW lr 6e-5, wd 0.01, linear warm-up 1500 iterations, poly decay (power 1.0)
# over 160k iterations for a total batch of 16 (8 GPUs x 2), used as it is:
# `tools/train.py --auto-scale-lr` scales it linearly to your GPUs x batch size
train_dataloader = dict(batch_size=2, dataset=dict(pipeline={{_base_.ade20k_train_pipeline}}))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys={'attention_biases': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# checkpoints written atomically, then last_checkpoint, then outdated ones deleted
# (a killed job never leaves a half-written file or loses a complete one);
# RNG states saved in checkpoints so --resume continues the same random stream;
# load_from / --resume checkpoints must fit the model exactly
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook',
                                     backend_args=dict(backend='atomic_local')))
custom_hooks = [dict(type='RNGStateHook'), dict(type='StrictLoadHook'),
                dict(type='FiniteLossHook')]
