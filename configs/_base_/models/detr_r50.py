# DETR, ResNet-50 (the paper's defaults): the stride-32 map projected to 256
# channels, 6 encoder and 6 decoder layers, 8 heads, FFN 2048, dropout 0.1,
# 100 object queries; classification cost 1, L1 5, GIoU 2 in the matcher and
# the loss, no-object weight 0.1.
model = dict(
    type='DETR',
    num_queries=100,
    embed_dims=256,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    # Stem and first stage frozen, batch norm frozen, as DETR's
    # FrozenBatchNorm2d backbone.
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    # DETR's input_proj: a 1x1 convolution to the transformer width.
    neck=dict(
        type='ChannelMapper',
        in_channels=[2048],
        kernel_size=1,
        out_channels=256,
        act_cfg=None,
        norm_cfg=None,
        num_outs=1),
    positional_encoding=dict(
        type='SinePositionalEncoding', normalize=True, offset=0.),
    encoder=dict(
        type='TransformerEncoder',
        num_layers=6,
        num_heads=8,
        feedforward_channels=2048,
        dropout=0.1),
    decoder=dict(
        type='TransformerDecoder',
        num_layers=6,
        num_heads=8,
        feedforward_channels=2048,
        dropout=0.1),
    bbox_head=dict(
        type='DETRHead',
        num_classes=80,
        no_object_weight=0.1,
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=1.0),
                dict(type='BBoxL1Cost', weight=5.0),
                dict(type='GIoUCost', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))
