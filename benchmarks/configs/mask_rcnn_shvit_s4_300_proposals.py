# A deployment test_cfg for the whole-detector latency table
# (benchmarks/whole_detectors_cpu.py): Mask R-CNN SHViT-S4 with 300 RPN proposals
# through the box head instead of 1000, the usual trade of a little recall for
# less RoI work. Its accuracy cost on COCO is not measured here; on the toy val
# split (at most 4 objects per image) 300 proposals scored higher than 1000.
_base_ = '../../configs/mask_rcnn_shvit_s4.py'
model = dict(test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=300)))
