# The DETR paper's schedule: AdamW 1e-4 (backbone 1e-5), weight decay 1e-4,
# grad clip 0.1, 500 epochs, lr x0.1 after epoch 400, for a total batch of
# 64 images (16 GPUs x 4 images).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))

max_epochs = 500
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[400],
        gamma=0.1)
]

# The lr above is for base_batch_size images per step; ``tools/train.py
# --auto-scale-lr`` rescales it linearly to the actual total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=64)
