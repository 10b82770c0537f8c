# The model of tests/test_parity_mmdet.py (ResNet-18, width 256, 4 levels,
# 2 + 2 layers, 20 queries) on the shapes data of the tiny config, for the
# round trip of tests/test_convert_mmdet.py: an mmdet checkpoint of that
# model, converted, is evaluated by tools/test.py.
_base_ = './tiny_deformable_detr.py'
model = dict(
    num_queries=20,
    num_feature_levels=4,
    embed_dims=256,
    with_box_refine=True,
    backbone=dict(
        base_channels=64, out_indices=(1, 2, 3), norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=False)),
    neck=dict(
        in_channels=[128, 256, 512],
        out_channels=256,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=4),
    encoder=dict(num_layers=2, num_heads=8, num_points=4),
    decoder=dict(num_layers=2, num_heads=8, num_points=4))
