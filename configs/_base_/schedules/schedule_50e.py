# The Deformable DETR paper's schedule: AdamW, 50 epochs, lr x0.1 at epoch 40,
# for a total batch of 32 images (16 GPUs x 2 images).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    # The backbone and the parts of deformable attention that choose where to
    # sample (offsets, reference points) train 10x slower, as in the paper.
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1),
        }))

max_epochs = 50
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
        milestones=[40],
        gamma=0.1)
]

# The lr above is for base_batch_size images per step; ``tools/train.py
# --auto-scale-lr`` rescales it linearly to the actual total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=32)
