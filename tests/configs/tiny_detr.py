# The DETR counterpart of tiny_deformable_detr.py, on the same data and
# schedule: ResNet-18 at 1/8 width with its last stage dilated (stride 16,
# a 4 x 4 map for the 64 px images), width 32, 1 encoder and 2 decoder
# layers, 10 queries; no pretrained weights.
_base_ = [
    '../../configs/_base_/models/detr_r50.py',
    './tiny_shapes_runtime.py',
]

model = dict(
    num_queries=10,
    embed_dims=32,
    backbone=dict(
        depth=18,
        base_channels=8,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64], out_channels=32),
    encoder=dict(
        num_layers=1, num_heads=4, feedforward_channels=64, dropout=0.0),
    decoder=dict(
        num_layers=2, num_heads=4, feedforward_channels=64, dropout=0.0),
    bbox_head=dict(num_classes=4),  # the classes of tiny_shapes_runtime.py
    test_cfg=dict(max_per_img=10))
