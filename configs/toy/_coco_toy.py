# The built-in toy COCO dataset (tools/make_toy_data.py): 256x192 images of
# circles, rectangles and triangles. Shared by the toy detection configs, which
# pull these ``toy_*`` values in with {{_base_.toy_...}} (mmengine refuses keys
# defined in two bases) and otherwise keep the real configs' model and recipe.
toy_data_root = 'data/toy_coco/'
toy_metainfo = dict(classes=('circle', 'rectangle', 'triangle'),
                    palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)])
toy_image_scale = (256, 192)

toy_train_pipeline = [
    dict(type='LoadImageOrSkip'),  # an unreadable image: named in a warning, skipped
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=toy_image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=toy_image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
toy_train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=toy_data_root, metainfo=toy_metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=toy_data_root, metainfo=toy_metainfo,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 pipeline=toy_test_pipeline))
toy_evaluator = dict(ann_file=toy_data_root + 'annotations/instances_val.json')
toy_bbox_evaluator = dict(ann_file=toy_data_root + 'annotations/instances_val.json',
                          metric='bbox')

# Neck and head width of the toy detectors (the real configs: 256). On 2 CPU cores
# the 3x3 convs of the stride-4 level and of the mask head dominate a training step;
# half the width makes the step ~2.5x cheaper (3.0 -> 1.2-1.3 s), which buys the images.
toy_width = 128

# The toy schedule: one pass over the 1600 generated training images (~322 iterations
# of 4; mmdet drops the ~fifth of images that hold no shape, so each image with one is
# seen once, nothing to memorise), from-scratch learning rate (no lr auto-scaling),
# warm-up, then cosine decay to the end.
toy_max_epochs = 1
toy_train_cfg = dict(max_epochs=toy_max_epochs, val_interval=toy_max_epochs)
toy_optim_wrapper = dict(optimizer=dict(lr=1e-3))
toy_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=toy_max_epochs,
         T_max=toy_max_epochs, eta_min_ratio=0.01, convert_to_iter_based=True),
]
# RetinaNet from scratch needs three passes: after one its focal-loss classifier is
# still near the prior (bbox mAP 0.007, the ResNet-18 control 0.006); after three
# 0.057 vs the control's 0.043, at 0.7x its cost per iteration (~7 min on 2 cores;
# benchmarks/toy_learning.py --model retinanet). Same warm-up, the decay over three.
toy_retinanet_max_epochs = 3
toy_retinanet_train_cfg = dict(toy_train_cfg, max_epochs=toy_retinanet_max_epochs,
                               val_interval=toy_retinanet_max_epochs)
toy_retinanet_param_scheduler = [
    toy_param_scheduler[0],
    dict(toy_param_scheduler[1], end=toy_retinanet_max_epochs, T_max=toy_retinanet_max_epochs),
]
toy_default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
# after distributed runs: verify every rank ends with the same weights
toy_custom_hooks = [dict(type='RNGStateHook'), dict(type='StrictLoadHook'),
                    dict(type='FiniteLossHook'), dict(type='RankConsistencyHook')]
