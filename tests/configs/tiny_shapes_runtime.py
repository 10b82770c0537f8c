# Data, schedule and runtime of the tiny test models (tiny_deformable_detr.py,
# tiny_detr.py): the shapes data set through the real COCO dataset, schedule
# and runtime base configs. The data root is relative: the tests generate the
# data set under their working directory.
_base_ = [
    '../../configs/_base_/datasets/coco_detection.py',
    '../../configs/_base_/schedules/schedule_50e.py',
    '../../configs/_base_/default_runtime.py',
]

classes = ('circle', 'square', 'triangle', 'cross')

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
