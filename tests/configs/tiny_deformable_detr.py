# A Deformable DETR small enough to train a few iterations on a CPU in
# seconds, on the synthetic shapes data set (mmdet_detr/datasets/shapes.py),
# through the same _base_ model, runtime, schedule and COCO dataset configs as
# the real experiments. The data root is relative: the tests generate the
# data set under their working directory.
_base_ = [
    '../../configs/_base_/models/deformable_detr_r50.py',
    '../../configs/_base_/datasets/coco_detection.py',
    '../../configs/_base_/schedules/schedule_50e.py',
    '../../configs/_base_/default_runtime.py',
]

classes = ('circle', 'square', 'triangle', 'cross')

# ResNet-18 at 1/8 width, 2 feature levels of 32 channels, 1 encoder and
# 2 decoder layers, 10 queries; no pretrained weights.
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
        feedforward_channels=64,
        dropout=0.0),
    decoder=dict(
        num_layers=2,
        num_heads=4,
        num_points=2,
        feedforward_channels=64,
        dropout=0.0),
    bbox_head=dict(num_classes=len(classes)),
    test_cfg=dict(max_per_img=10))

data_root = 'data/shapes/'
metainfo = dict(classes=classes)
image_scale = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)
]
default_hooks = dict(logger=dict(interval=1))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
