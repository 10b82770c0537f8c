"""Property tests (hypothesis): random boxes, degenerate ones included, never
give NaN in the box operations, matching costs or losses, and the assigner
always returns a valid one-to-one matching."""
import os.path as osp

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdet_detr.models.assigners.hungarian_assigner import HungarianAssigner
from mmdet_detr.models.box_ops import (box_cxcywh_to_xyxy, generalized_box_iou,
                                       inverse_sigmoid)
from mmdet_detr.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_CFG = Config.fromfile(
    osp.join(REPO_ROOT, 'configs', '_base_', 'models',
             'deformable_detr_r50.py')).model
EXAMPLES = settings(max_examples=40, deadline=None)

# Normalised coordinates: 0 and 1 (points, boxes on the border), zero width
# or height, and ordinary values; what a sigmoid head can output.
coordinate = st.one_of(
    st.sampled_from([0.0, 1e-7, 0.5, 1.0 - 1e-7, 1.0]),
    st.floats(0.0, 1.0, allow_nan=False, width=32))


def boxes(min_size=0, max_size=6):
    """(N, 4) normalised ``cx, cy, w, h``."""
    return st.lists(
        st.tuples(coordinate, coordinate, coordinate, coordinate),
        min_size=min_size,
        max_size=max_size).map(lambda rows: torch.tensor(
            rows, dtype=torch.float32).reshape(-1, 4))


logit = st.one_of(
    st.sampled_from([-1e4, -50.0, 0.0, 50.0, 1e4]),
    st.floats(-20.0, 20.0, allow_nan=False, width=32))


def _assigner():
    return HungarianAssigner(
        match_costs=[
            dict(type='FocalLossCost', weight=2.0),
            dict(type='BBoxL1Cost', weight=5.0),
            dict(type='GIoUCost', weight=2.0),
            dict(type='ClassificationCost', weight=1.0)
        ])


@EXAMPLES
@given(boxes(1), boxes(1))
def test_giou_is_finite_and_bounded(a, b):
    a_xyxy, b_xyxy = box_cxcywh_to_xyxy(a), box_cxcywh_to_xyxy(b)
    giou = generalized_box_iou(a_xyxy, b_xyxy)  # N, K
    assert torch.isfinite(giou).all()
    assert (giou >= -1 - 1e-5).all() and (giou <= 1 + 1e-5).all()


@EXAMPLES
@given(boxes(1, 4).flatmap(lambda p: st.tuples(
    st.just(p), boxes(len(p), len(p)))))
def test_giou_and_l1_losses_have_finite_gradients(pair):
    pred, target = pair
    pred = pred.clone().requires_grad_()
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        loss_iou = MODELS.build(MODEL_CFG.bbox_head.loss_iou)
        loss_bbox = MODELS.build(MODEL_CFG.bbox_head.loss_bbox)
    # The head's GIoU loss is in pixels; here a 640 x 480 image.
    scale = torch.tensor([640., 480., 640., 480.])
    loss = (loss_iou(box_cxcywh_to_xyxy(pred) * scale,
                     box_cxcywh_to_xyxy(target) * scale) +
            loss_bbox(pred, target) +
            (1 - generalized_box_iou(
                box_cxcywh_to_xyxy(pred),
                box_cxcywh_to_xyxy(target)).diagonal()).sum())
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


@EXAMPLES
@given(st.lists(logit, min_size=3, max_size=3).map(torch.tensor),
       st.integers(0, 2))
def test_focal_loss_is_finite_for_extreme_logits(logits, label):
    logits = logits.reshape(1, 3).clone().requires_grad_()
    with DefaultScope.overwrite_default_scope('mmdet_detr'):
        focal = MODELS.build(MODEL_CFG.bbox_head.loss_cls)
    loss = focal(logits, torch.tensor([label]))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@EXAMPLES
@pytest.mark.filterwarnings('ignore:an image has .* targets but only')
@given(
    st.integers(1, 2),  # T layers
    st.integers(1, 6),  # Q queries
    st.lists(boxes(0, 7), min_size=1, max_size=2),  # G_b targets per image
    st.data())
def test_assignment_is_a_valid_one_to_one_matching(T, Q, gt_boxes, data):
    B, K = len(gt_boxes), 3
    pred = data.draw(boxes(T * B * Q, T * B * Q)).reshape(T, B, Q, 4)
    logits = torch.tensor(
        data.draw(st.lists(logit, min_size=T * B * Q * K,
                           max_size=T * B * Q * K))).reshape(T, B, Q, K)
    labels = [
        torch.tensor(
            data.draw(st.lists(st.integers(0, K - 1), min_size=len(g),
                               max_size=len(g))),
            dtype=torch.long) for g in gt_boxes
    ]
    assigner = _assigner()
    for b in range(B):
        cost = assigner._cost(logits[:, b], pred[:, b], labels[b],
                              gt_boxes[b])  # T, Q, G_b
        assert torch.isfinite(cost).all()
    matches = assigner.assign(logits, pred, labels, gt_boxes)
    assert len(matches) == T
    for layer in matches:
        assert len(layer) == B
        for (rows, cols), targets in zip(layer, gt_boxes):
            G = len(targets)
            assert len(rows) == len(cols) == min(Q, G)
            assert len(set(rows.tolist())) == len(rows)  # one per query
            assert len(set(cols.tolist())) == len(cols)  # one per target
            assert all(0 <= r < Q for r in rows.tolist())
            assert all(0 <= c < G for c in cols.tolist())


@EXAMPLES
@given(coordinate)
def test_inverse_sigmoid_is_finite(x):
    value = inverse_sigmoid(torch.tensor([x]))
    assert torch.isfinite(value).all()
