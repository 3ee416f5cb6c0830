# mmseg's ADE20K training pipeline with our image loader, which names an unreadable
# image and draws another sample instead of crashing a dataloader worker (the test
# pipeline keeps mmcv's loader, which mmseg's inferencer looks for). A base of its
# own, under its own name: mmengine refuses a key that two bases define.
ade20k_train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
