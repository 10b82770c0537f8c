# Deformable DETR for the generated shapes data (`make demo`), sized to train
# on 2 CPU cores in under 10 minutes: 128 px images, a ResNet-18 of quarter
# width from scratch, width 128, 3 levels (strides 8, 16, 32; dropping stride
# 8 costs a third of the mAP), one encoder layer, three decoder layers with
# box refinement, 30 queries, 2 sampling points, no dropout, batch 8 and a
# warm-up + cosine schedule at a high learning rate (2e-3 beat 1e-3 and 5e-4).
_base_ = [
    '../_base_/models/deformable_detr_r50.py',
    '../_base_/datasets/shapes_detection.py',
    '../_base_/default_runtime.py',
]

model = dict(
    num_queries=30,
    num_feature_levels=3,
    embed_dims=128,
    with_box_refine=True,
    backbone=dict(
        depth=18,
        base_channels=16,
        stem_channels=16,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=128, num_outs=3),
    encoder=dict(
        num_layers=1, num_points=2, feedforward_channels=512, dropout=0.0),
    decoder=dict(
        num_layers=3, num_points=2, feedforward_channels=512, dropout=0.0),
    bbox_head=dict(num_classes=4),
    test_cfg=dict(max_per_img=30))

train_dataloader = dict(batch_size=8)

max_iters = 1600
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
