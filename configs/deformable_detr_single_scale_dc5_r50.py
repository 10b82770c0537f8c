# Single-scale DC5: the last ResNet stage dilated instead of strided, so the
# one map has stride 16 (paper: 41.5 AP). As in torchvision's ResNet, which
# the official weights were trained with, the stage's first block keeps
# dilation 1 (mmdet's ResNet would dilate it too).
_base_ = './deformable_detr_single_scale_r50.py'
model = dict(
    backbone=dict(
        type='TorchvisionDilationResNet',
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2)))
