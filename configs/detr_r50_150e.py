# DETR, ResNet-50, the short schedule: 150 epochs, lr x0.1 after epoch 100
# (the official repository's 150-epoch schedule).
_base_ = './detr_r50.py'

max_epochs = 150
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[100],
        gamma=0.1)
]
