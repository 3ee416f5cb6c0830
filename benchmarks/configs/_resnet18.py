# mmdet's own ResNet-18, from scratch (mmdet's default init), as the controls'
# backbone; pulled in with {{_base_.resnet18_backbone}} (it replaces ours whole)
resnet18_backbone = dict(_delete_=True, type='ResNet', depth=18, num_stages=4,
                         out_indices=(0, 1, 2, 3), frozen_stages=-1, style='pytorch',
                         norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                         init_cfg=None)
