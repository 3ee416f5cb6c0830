# The headline Mask R-CNN + SHViT-S1 on the built-in toy dataset, trained from
# scratch on CPU in minutes. Only data, image scale, schedule, RoI sampling and
# the neck / head width (_coco_toy.py's toy_width) differ from
# configs/mask_rcnn_shvit_s1.py.
_base_ = ['../mask_rcnn_shvit_s1.py', './_coco_toy.py']

# CPU budget: mmcv's CPU RoIAlign is single-threaded and samples adaptively
# (sampling_ratio=0), and 512 sampled RoIs per image (up to 128 through the mask
# head) dominate a step; a fixed 2x2 sampling and 64 RoIs cut the step time by 2.5x
# without changing the model.
roi_layer = dict(type='RoIAlign', output_size=7, sampling_ratio=2)
width = {{_base_.toy_width}}
model = dict(
    # ImageNet-free: no pretrained BatchNorm statistics to preserve, so train them
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None), norm_eval=False),
    neck=dict(out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(bbox_roi_extractor=dict(roi_layer=roi_layer, out_channels=width),
                  mask_roi_extractor=dict(roi_layer=dict(roi_layer, output_size=14),
                                          out_channels=width),
                  bbox_head=dict(num_classes=3, in_channels=width),
                  mask_head=dict(num_classes=3, in_channels=width, conv_out_channels=width)),
    train_cfg=dict(rcnn=dict(sampler=dict(num=64))))

train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.toy_evaluator}}
test_evaluator = val_evaluator

train_cfg = {{_base_.toy_train_cfg}}
optim_wrapper = {{_base_.toy_optim_wrapper}}
auto_scale_lr = dict(enable=False)
param_scheduler = {{_base_.toy_param_scheduler}}
default_hooks = {{_base_.toy_default_hooks}}
custom_hooks = {{_base_.toy_custom_hooks}}
