# Control for the whole-detector latency table (benchmarks/whole_detectors_cpu.py):
# mmdet's own RetinaNet ResNet-50 + FPN, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
