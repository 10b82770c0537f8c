# DINO, 4-scale ResNet-50, 24 epochs, lr x0.1 at epoch 20 (official code:
# 50.4 AP).
_base_ = './dino_4scale_r50_12e.py'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[20],
        gamma=0.1)
]
