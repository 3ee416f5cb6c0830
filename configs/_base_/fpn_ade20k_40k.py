# Semantic FPN on ADE20K with an efficient ViT backbone: mmseg's own FPN / ADE20K /
# 40k-schedule bases plus the Semantic FPN recipe of efficient-backbone papers (PoolFormer,
# RepViT: AdamW 2e-4, wd 1e-4, 8 GPUs x 4 images, 40k iterations, poly 0.9, 512x512).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_40k.py',
    './ade20k_train_pipeline.py'
]
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    # train: pad crops to 512x512; test (single scale, whole image): pad to a multiple
    # of 64, the backbone's coarsest stride; predictions are cropped back
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=64)),
    pretrained=None,
    backbone=dict(_delete_=True, type='SHViT', arch='s4', out_indices=(0, 1, 2),
                  norm_eval=True),  # ImageNet BN statistics: 4 images/GPU are too few
    # strides 16/32/64 -> 4/8/16/32 for the FPN head (two transposed-conv levels)
    neck=dict(_delete_=True, type='TransposedFPN', in_channels=[224, 336, 448],
              out_channels=256, num_outs=4, num_extra_trans_convs=2),
    decode_head=dict(num_classes=150))

train_dataloader = dict(dataset=dict(pipeline={{_base_.ade20k_train_pipeline}}))

# AdamW lr 2e-4, wd 1e-4, poly decay (power 0.9) over 40k iterations for a total
# batch of 32 (8 GPUs x 4), used as it is: `tools/train.py --auto-scale-lr` scales it
# linearly to your GPUs x batch size.
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys={'attention_biases': dict(decay_mult=0.0)}))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000,
                        by_epoch=False)]
auto_scale_lr = dict(enable=False, base_batch_size=32)

# checkpoints written atomically, then last_checkpoint, then outdated ones deleted
# (a killed job never leaves a half-written file or loses a complete one);
# RNG states saved in checkpoints so --resume continues the same random stream;
# load_from / --resume checkpoints must fit the model exactly
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook',
                                     backend_args=dict(backend='atomic_local')))
custom_hooks = [dict(type='RNGStateHook'), dict(type='StrictLoadHook'),
                dict(type='FiniteLossHook')]
