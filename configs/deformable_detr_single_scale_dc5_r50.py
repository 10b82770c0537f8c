# Single-scale DC5: the last ResNet stage dilated instead of strided, so the
# one map has stride 16 (paper: 41.5 AP).
_base_ = './deformable_detr_single_scale_r50.py'
model = dict(
    backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
