# Single-scale Deformable DETR: only the stride-32 map (paper: 39.4 AP).
_base_ = './deformable_detr_r50.py'
model = dict(
    num_feature_levels=1,
    backbone=dict(out_indices=(3, )),
    neck=dict(in_channels=[2048], num_outs=1))
