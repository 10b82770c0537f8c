# DINO for the generated shapes data (`make demo`), the counterpart of
# deformable_detr_shapes.py with the same model size: a ResNet-18 of quarter
# width from scratch, width 128, 3 levels, one encoder and three decoder
# layers, 30 matching queries, 2 sampling points, FFN 512, no dropout, batch
# 8 and the same warm-up + cosine schedule. DINO adds about 30 denoising
# queries per batch (images hold 1 to 4 shapes, so 7 or more groups).
# Two settings of mmdet's "improved" DINO (dino_4scale_r50_improved_12e.py)
# are Deformable DETR's: positions at pixel centres with temperature 10000,
# and focal loss weight 2 (with them the demo reaches 0.90 at 1200
# iterations, against 0.82 with the paper's 20 / no offset / weight 1).
# A DINO step costs about 1.4 of Deformable DETR's, so 1200 iterations take
# about the training time of that demo's 1600 (README, "DINO").
_base_ = [
    '../_base_/models/dino_4scale_r50.py',
    '../_base_/datasets/shapes_detection.py',
    '../_base_/default_runtime.py',
]

model = dict(
    num_queries=30,
    num_feature_levels=3,
    embed_dims=128,
    backbone=dict(
        depth=18,
        base_channels=16,
        stem_channels=16,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=128, num_outs=3),
    encoder=dict(num_layers=1, num_points=2, feedforward_channels=512),
    decoder=dict(num_layers=3, num_points=2, feedforward_channels=512),
    positional_encoding=dict(offset=-0.5, temperature=10000),
    bbox_head=dict(
        num_classes=4,
        num_denoising_queries=30,
        loss_cls=dict(loss_weight=2.0)),
    test_cfg=dict(max_per_img=30))

train_dataloader = dict(batch_size=8)

max_iters = 1200
warmup_iters = 200
lr = 2e-3
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1)
        }))
train_cfg = dict(
    type='ResumableIterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=lr * 0.02),
]
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=400,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
