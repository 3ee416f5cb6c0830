# Control for the whole-detector latency table (benchmarks/whole_detectors_cpu.py):
# mmdet's own Mask R-CNN ResNet-50 + FPN, unchanged.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
