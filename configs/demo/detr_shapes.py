# DETR for the generated shapes data, the counterpart of
# deformable_detr_shapes.py with the same backbone (a ResNet-18 of quarter
# width from scratch), width 128, encoder and decoder depth (1 + 3), 30
# queries, no dropout, batch 8 and the same warm-up + cosine schedule. DETR
# reads one map: the last stage is dilated (the DC5 layout), giving an 8 x 8
# map at stride 16 for the 128 px images; at stride 32 it would be 4 x 4.
# A DETR step costs 0.6 of a Deformable DETR demo step (measured interleaved
# on the same batches, one thread each), so 2600 iterations take the wall
# time of the Deformable DETR demo's 1600 (results in docs/detr.md).
_base_ = [
    '../_base_/models/detr_r50.py',
    '../_base_/datasets/shapes_detection.py',
    '../_base_/default_runtime.py',
]

model = dict(
    num_queries=30,
    embed_dims=128,
    backbone=dict(
        depth=18,
        base_channels=16,
        stem_channels=16,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[128], out_channels=128),
    encoder=dict(num_layers=1, feedforward_channels=512, dropout=0.0),
    decoder=dict(num_layers=3, feedforward_channels=512, dropout=0.0),
    bbox_head=dict(num_classes=4),
    test_cfg=dict(max_per_img=30))

train_dataloader = dict(batch_size=8)

max_iters = 2600
warmup_iters = 200
lr = 2e-3
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2))
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
# The checkpoint hook's type comes from default_runtime.
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=400, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
