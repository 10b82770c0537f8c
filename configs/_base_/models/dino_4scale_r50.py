# DINO, ResNet-50, 4 levels (the paper's and mmdet's 4-scale R50 model):
# 900 matching queries from the top encoder proposals, about 100 denoising
# queries per batch (label noise 0.5, box noise 1.0), 6 + 6 layers with FFN
# 2048 and no dropout, positions with temperature 20 and no offset, focal
# loss weight 1, 300 detections per image.
model = dict(
    type='DINO',
    num_queries=900,
    num_feature_levels=4,
    embed_dims=256,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    # Strides 8, 16, 32 from the backbone; the fourth level is a stride-2
    # 3x3 convolution on the last map.
    neck=dict(
        type='ChannelMapper',
        in_channels=[512, 1024, 2048],
        kernel_size=1,
        out_channels=256,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=4),
    positional_encoding=dict(
        type='SinePositionalEncoding',
        normalize=True,
        offset=0.0,
        temperature=20),
    encoder=dict(
        type='DeformableTransformerEncoder',
        num_layers=6,
        num_heads=8,
        num_points=4,
        feedforward_channels=2048,
        dropout=0.0),
    decoder=dict(
        type='DINOTransformerDecoder',
        num_layers=6,
        num_heads=8,
        num_points=4,
        feedforward_channels=2048,
        dropout=0.0),
    bbox_head=dict(
        type='DINOHead',
        num_classes=80,
        sync_cls_avg_factor=True,
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        num_denoising_queries=100,
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0),
                dict(type='GIoUCost', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=300))
