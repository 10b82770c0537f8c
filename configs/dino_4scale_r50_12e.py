# DINO, 4-scale ResNet-50, COCO 2017, 12 epochs (paper and mmdet 3.3: 49.0
# AP). mmdet's schedule: AdamW at 1e-4 (backbone x0.1), lr x0.1 at epoch 11,
# for a total batch of 16 images (8 GPUs x 2 images).
_base_ = [
    '_base_/models/dino_4scale_r50.py',
    '_base_/datasets/coco_detection.py',
    '_base_/default_runtime.py',
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))

max_epochs = 12
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[11],
        gamma=0.1)
]

# The lr above is for base_batch_size images per step; ``tools/train.py
# --auto-scale-lr`` rescales it linearly to the actual total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
