# DETR-DC5, ResNet-50, 500 epochs (paper: 43.3 AP): the last ResNet stage
# dilated instead of strided, so the map has stride 16 and 4x the tokens.
# As in torchvision's ResNet, which the official weights were trained with,
# the stage's first block keeps its 3x3 convolution undilated; mmdet's
# ResNet would dilate it too, and converted DC5 weights would then compute
# something else.
_base_ = './detr_r50.py'
model = dict(
    backbone=dict(
        type='TorchvisionDilationResNet',
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2)))
