# shvit_s1 in place of the backbone of fcos_r18_toy.py
# (written by tools/swap_backbone.py; everything not set here is the base's)
_base_ = 'fcos_r18_toy.py'
custom_imports = dict(imports=['efficientvit_det'], allow_failed_imports=False)

model = dict(
    # shvit_s1 (strides [16, 32, 64]), no weights: trained from scratch
    backbone=dict(
        _delete_=True,
        type='SHViT',
        arch='s1',
        out_indices=(0, 1, 2),
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=None),
    ),
    # our TransposedFPN in place of the FPN: the same strides ([8, 16, 32, 64, 128])
    #   and width, its finer levels made by 2x2 transposed convolutions
    neck=dict(
        _delete_=True,
        type='TransposedFPN',
        in_channels=[128, 224, 320],
        in_strides=[16, 32, 64],
        out_channels=128,
        num_outs=5,
        num_extra_trans_convs=1,
        add_extra_convs='on_output',
        relu_before_extra_convs=True,
    ),
)
