"""The backbone and neck run channels-last by default: same predictions and
losses as NCHW, weights that stay channels-last through checkpoint loading,
and token maps flattened without a copy."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from tiny_checkpoint import TINY_CONFIG

from mmdet_detr.benchmark.inputs import synthetic_batch
from mmdet_detr.registry import MODELS

TINY_DETR = 'tests/configs/tiny_detr.py'


def build(config, channels_last):
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        model = MODELS.build({**cfg.model, 'channels_last': channels_last})
    return model, cfg.model['bbox_head']['num_classes']


def conv_weights(model):
    return [p for p in model.backbone.parameters() if p.dim() == 4]


@pytest.mark.parametrize('config', [TINY_CONFIG, TINY_DETR])
def test_channels_last_matches_nchw(config):
    nchw, num_classes = build(config, channels_last=False)
    nhwc, _ = build(config, channels_last=True)
    assert all(w.is_contiguous() for w in conv_weights(nchw))
    # The layout is kept when a (contiguous) state dict is copied in.
    nhwc.load_state_dict(
        {k: v.contiguous() for k, v in nchw.state_dict().items()})
    assert all(
        w.is_contiguous(memory_format=torch.channels_last)
        for w in conv_weights(nhwc))
    images, samples = synthetic_batch(2, (64, 96), num_classes,
                                      boxes_per_image=3)
    for model in (nchw, nhwc):
        model.eval()  # a training-mode pass would update the norms' stats
    with torch.no_grad():
        feats = nhwc.extract_feat(images)
    assert all(f.is_contiguous(memory_format=torch.channels_last)
               for f in feats)
    assert feats[0].flatten(2).transpose(1, 2).is_contiguous()
    with torch.no_grad():
        expected = nchw.predict(images, copy.deepcopy(samples))
        got = nhwc.predict(images, copy.deepcopy(samples))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.pred_instances.scores,
                                   e.pred_instances.scores, atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(g.pred_instances.bboxes,
                                   e.pred_instances.bboxes, atol=1e-3,
                                   rtol=0)
    for model in (nchw, nhwc):
        model.train()
    torch.manual_seed(1)
    losses_nchw = nchw.loss(images, copy.deepcopy(samples))
    torch.manual_seed(1)
    losses_nhwc = nhwc.loss(images, copy.deepcopy(samples))
    for name, value in losses_nchw.items():
        torch.testing.assert_close(losses_nhwc[name], value, atol=1e-5,
                                   rtol=1e-5)
