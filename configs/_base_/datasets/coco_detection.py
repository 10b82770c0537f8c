# COCO 2017 detection in the mmdet layout:
#   data/coco/annotations/instances_{train,val}2017.json
#   data/coco/{train,val}2017/*.jpg
# mmdet's CocoDataset plus checks of the annotation file and image files
# before training (mmdet_detr/datasets/checked_coco.py). The scope prefix
# lets mmdet's registries find it too.
dataset_type = 'mmdet_detr.CheckedCocoDataset'
data_root = 'data/coco/'
backend_args = None

# Deformable DETR's train augmentation (the paper, Sec. 5 and its
# ``datasets/coco.py``): horizontal flip, then either a multi-scale resize
# (short side 480..800, long side <= 1333) or a resize + random crop
# (384..600) + the same multi-scale resize, each chosen with probability 0.5.
# Taken from mmdet 3.3's ``deformable-detr_r50_16xb2-50e_coco.py``.
multi_scale_resize = dict(
    type='RandomChoiceResize',
    scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
            (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
            (800, 1333)],
    keep_ratio=True)
train_pipeline = [
    dict(
        type='mmdet_detr.CheckedLoadImageFromFile',
        backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [multi_scale_resize],
            [
                # The reference resizes the short side to 400/500/600 with no
                # cap on the long side; 4200 is above 7x600, and every COCO
                # image has an aspect ratio below 7.
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 4200), (500, 4200), (600, 4200)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                multi_scale_resize,
            ],
        ]),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='mmdet_detr.CheckedLoadImageFromFile',
        backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    # Ground truth is loaded for the metric only; drop this line to run on
    # images without annotations.
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        # DETR trains on images without objects too (their loss is the
        # no-object classification term alone).
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
