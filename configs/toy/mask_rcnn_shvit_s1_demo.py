# The demo's detector (`make demo`, tools/demo.py): the toy Mask R-CNN + SHViT-S1,
# from scratch on CPU, on the demo's toy set (tools/make_toy_data.py --profile demo:
# 1-2 large shapes per image; docs/datasets.md says why it differs from the
# benchmark's toy set). What else differs from the toy config, each to buy
# iterations in the demo's 10 CPU minutes, each measured (benchmarks/LOG.md, "The
# demo's recipe"):
_base_ = ['./mask_rcnn_shvit_s1_toy.py']

demo_data_root = 'data/toy_coco_demo/'
levels = [8, 16, 32, 64]
model = dict(
    # the demo's shapes are 86-154 pixels: no stride-4 level (its 3x3 convs were a
    # fifth of a step); one transposed level (stride 8) above the backbone's 16
    neck=dict(num_outs=4, num_extra_trans_convs=1),
    rpn_head=dict(anchor_generator=dict(strides=levels)),
    roi_head=dict(bbox_roi_extractor=dict(featmap_strides=levels),
                  mask_roi_extractor=dict(featmap_strides=levels),
                  bbox_head=dict(fc_out_channels=256)),  # 1024 wide: 3x the parameters
    # one or two objects per image: fewer sampled RoIs and proposals
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(max_per_img=300), rcnn=dict(max_per_img=20)))

# batch 2: twice the updates for the same images (a step costs per image)
train_dataloader = dict(batch_size=2, dataset=dict(data_root=demo_data_root))
val_dataloader = dict(dataset=dict(data_root=demo_data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=demo_data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
