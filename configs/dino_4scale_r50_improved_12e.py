# DINO, 4-scale ResNet-50, 12 epochs with Deformable DETR's settings where
# they differ (mmdet 3.3's "improved" model: 50.1 AP): the whole backbone
# trains, focal loss weight 2, positions at pixel centres with temperature
# 10000, about 300 denoising queries, AdamW at 2e-4 with the sampling
# offsets and reference points 10x slower. Same parameters as
# dino_4scale_r50_12e.py: only this config tells the weights apart.
_base_ = './dino_4scale_r50_12e.py'

model = dict(
    backbone=dict(frozen_stages=-1),
    positional_encoding=dict(offset=-0.5, temperature=10000),
    bbox_head=dict(num_denoising_queries=300, loss_cls=dict(loss_weight=2.0)))

optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1)
        }))
