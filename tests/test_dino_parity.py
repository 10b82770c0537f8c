"""Parity with mmdet 3.3's own DINO on identical weights.

Both models come from one config of this project (a small ResNet, two
layers per stack): ``build_model_pair`` builds mmdet's twin through
``mmdet_model_config``, perturbs mmdet's initial weights and copies them
into this project's model through the key map of
``checkpoint/converters/dino_mmdet.py``; both run on the same padded batch.

The denoising queries are random. They are made the same by injection:
this project's model runs first and its generator's ``noise`` (the noised
labels and boxes of every group, in mmdet's order) is recorded; mmdet's
``CdnQueryGenerator.generate_dn_label_query`` and
``generate_dn_bbox_query`` are then replaced, for that one call, by the
embedding of the recorded labels (with mmdet's own label embedding, so its
gradient is compared too) and the logits of the recorded boxes. Grouping,
padding, attention mask, decoding and losses are each model's own.
"""
import copy

import torch
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdet_detr.benchmark import build_model_pair
from mmdet_detr.checkpoint.converters.dino_mmdet import dino_mmdet_key_to_ours

EMBED, QUERIES, LAYERS, FFN, CLASSES = 256, 20, 2, 64, 5
STACK = dict(num_layers=LAYERS, num_heads=8, num_points=4,
             feedforward_channels=FFN)


def dino_config(dropout: float) -> dict:
    return dict(
        type='DINO', num_queries=QUERIES, num_feature_levels=4,
        embed_dims=EMBED,
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0],
                               std=[1, 1, 1]),
        backbone=dict(type='ResNet', depth=18, num_stages=4,
                      out_indices=(1, 2, 3), norm_cfg=dict(type='BN'),
                      norm_eval=False, style='pytorch'),
        neck=dict(type='ChannelMapper', in_channels=[128, 256, 512],
                  kernel_size=1, out_channels=EMBED, act_cfg=None,
                  norm_cfg=dict(type='GN', num_groups=32), num_outs=4),
        positional_encoding=dict(type='SinePositionalEncoding',
                                 normalize=True, offset=0.0, temperature=20),
        encoder=dict(type='DeformableTransformerEncoder', dropout=dropout,
                     **STACK),
        decoder=dict(type='DINOTransformerDecoder', dropout=dropout,
                     **STACK),
        bbox_head=dict(
            type='DINOHead', num_classes=CLASSES, sync_cls_avg_factor=True,
            label_noise_scale=0.5, box_noise_scale=1.0,
            num_denoising_queries=7,
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                          alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=5.0),
            loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0),
                dict(type='GIoUCost', weight=2.0)
            ])),
        test_cfg=dict(max_per_img=50))


def make_batch(counts):
    """Two images padded to 96x128, with ``counts`` boxes each."""
    torch.manual_seed(1)
    inputs = torch.randn(2, 3, 96, 128)
    shapes = [(96, 112), (80, 128)]
    boxes = [
        torch.tensor([[4., 6., 50., 70.], [30., 20., 100., 90.],
                      [60., 10., 80., 30.]]),
        torch.tensor([[10., 10., 40., 60.], [70., 30., 120., 75.]]),
    ]
    labels = [torch.tensor([0, 3, 3]), torch.tensor([1, 4])]
    samples = []
    for shape, box, label, count in zip(shapes, boxes, labels, counts):
        sample = DetDataSample(metainfo=dict(
            img_shape=shape, ori_shape=shape, batch_input_shape=(96, 128),
            pad_shape=(96, 128), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=box[:count],
                                           labels=label[:count])
        samples.append(sample)
    return inputs, samples


def test_predictions_match_mmdet():
    ours, reference = build_model_pair(dino_config(dropout=0.1), True)
    reference.eval()
    ours.eval()
    inputs, samples = make_batch((3, 2))
    with torch.no_grad():
        expected = reference.predict(inputs, copy.deepcopy(samples))
        got = ours.predict(inputs, copy.deepcopy(samples))
    for e, g in zip(expected, got):
        e, g = e.pred_instances, g.pred_instances
        torch.testing.assert_close(g.scores, e.scores, atol=1e-5, rtol=0)
        torch.testing.assert_close(g.bboxes, e.bboxes, atol=1e-5 * 128,
                                   rtol=1e-5)
        assert torch.equal(g.labels, e.labels)


def test_losses_and_gradients_match_mmdet(monkeypatch):
    # Three objects in one image, none in the other: the second image's
    # denoising queries are all padding.
    counts = (3, 0)
    ours, reference = build_model_pair(dino_config(dropout=0.0), True)
    reference.train()
    ours.train()
    inputs, samples = make_batch(counts)

    generator = ours.bbox_head.denoising
    recorded = []
    noise = generator.noise
    monkeypatch.setattr(generator, 'noise',
                        lambda *args: recorded.append(noise(*args)) or
                        recorded[-1])
    got = ours.loss(inputs, copy.deepcopy(samples))
    assert len(recorded) == 1
    noised = recorded[0]
    # 7 // 3 = 2 groups of a positive and a negative per object.
    assert len(noised.labels) == 2 * 2 * sum(counts)

    mm_generator = reference.dn_query_generator
    monkeypatch.setattr(
        mm_generator, 'generate_dn_label_query',
        lambda labels, num_groups: mm_generator.label_embedding(
            noised.labels))
    monkeypatch.setattr(
        mm_generator, 'generate_dn_bbox_query',
        lambda boxes, num_groups: inverse_sigmoid(noised.boxes, eps=1e-3))
    expected = reference.loss(inputs, copy.deepcopy(samples))

    assert set(got) == set(expected)
    assert 'dn_loss_cls' in got and 'd0.dn_loss_iou' in got
    for key in expected:
        # mmdet's normaliser is a 1-element tensor, so some of its losses
        # have shape (1, ); ours are scalars.
        torch.testing.assert_close(
            got[key], expected[key].reshape(()), atol=1e-5, rtol=1e-5,
            msg=lambda m, key=key: f'{key}: {m}')
    sum(expected.values()).backward()
    sum(got.values()).backward()
    our_params = dict(ours.named_parameters())
    compared = set()
    for key, param in reference.named_parameters():
        if param.grad is None:
            continue
        grad = our_params[dino_mmdet_key_to_ours(key)].grad
        torch.testing.assert_close(
            grad, param.grad, atol=1e-4, rtol=1e-4,
            msg=lambda m, key=key: f'{key}: {m}')
        compared.add(key)
    assert len(compared) > 50
    # The denoising label embedding is trained and compared too.
    assert 'dn_query_generator.label_embedding.weight' in compared
