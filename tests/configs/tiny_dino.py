# A DINO small enough to train a few iterations on a CPU in seconds, on the
# synthetic shapes data set, through the same _base_ model and runtime
# configs as the real experiments (data and schedule in
# tiny_shapes_runtime.py); the sizes of tiny_deformable_detr.py.
_base_ = [
    '../../configs/_base_/models/dino_4scale_r50.py',
    './tiny_shapes_runtime.py',
]

# ResNet-18 at 1/8 width, 2 feature levels of 32 channels, 1 encoder and
# 2 decoder layers, 10 matching and about 8 denoising queries; no
# pretrained weights.
model = dict(
    num_queries=10,
    num_feature_levels=2,
    embed_dims=32,
    backbone=dict(
        depth=18,
        base_channels=8,
        out_indices=(2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[32, 64],
        out_channels=32,
        norm_cfg=dict(type='GN', num_groups=8),
        num_outs=2),
    encoder=dict(
        num_layers=1,
        num_heads=4,
        num_points=2,
        feedforward_channels=64),
    decoder=dict(
        num_layers=2,
        num_heads=4,
        num_points=2,
        feedforward_channels=64),
    bbox_head=dict(num_classes=4, num_denoising_queries=8),
    test_cfg=dict(max_per_img=10))
