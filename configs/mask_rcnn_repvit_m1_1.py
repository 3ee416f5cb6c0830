# RepViT-M1.1 (an efficient CNN baseline) through timm: the FastViT-SA12 config
# with the backbone swapped (same stage widths 64/128/256/512, strides 4-32).
_base_ = './mask_rcnn_fastvit_sa12.py'

model = dict(backbone=dict(model_name='repvit_m1_1'))
