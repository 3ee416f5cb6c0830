# The built-in toy COCO dataset (tools/make_toy_data.py): 256x192 images of
# circles, rectangles and triangles. Shared by the toy detection configs, which
# pull these ``toy_*`` values in with {{_base_.toy_...}} (mmengine refuses keys
# defined in two bases) and otherwise keep the real configs' model and recipe.
toy_data_root = 'data/toy_coco/'
toy_metainfo = dict(classes=('circle', 'rectangle', 'triangle'),
                palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)])
toy_image_scale = (256, 192)

toy_train_pipeline = [
    dict(type='LoadImageOrSkip', skip_unreadable=True),  # unreadable images: logged, skipped
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=toy_image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
toy_test_pipeline = [
    dict(type='LoadImageOrSkip', skip_unreadable=False),  # unreadable images: clear error
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
