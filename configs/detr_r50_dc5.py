# DETR-DC5, ResNet-50, 500 epochs (paper: 43.3 AP): the last ResNet stage
# dilated instead of strided, so the map has stride 16 and 4x the tokens.
# mmdet's ResNet dilates every block of that stage; torchvision's, which the
# official weights come from, keeps the first block's 3x3 undilated, so
# converted DC5 weights see a slightly different first block.
_base_ = './detr_r50.py'
model = dict(
    backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
