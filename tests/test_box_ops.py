"""Box conversions and GIoU against mmdet's implementation."""
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmdet_detr.models.box_ops import (box_cxcywh_to_xyxy, box_xyxy_to_cxcywh,
                                       generalized_box_iou, inverse_sigmoid)


def random_xyxy(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    wh = torch.rand(n, 2, generator=g) * 30
    return torch.cat([xy, xy + wh], -1)


def test_conversions_round_trip():
    boxes = random_xyxy(20, 0)
    torch.testing.assert_close(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(boxes)),
                               boxes)
    cxcywh = box_xyxy_to_cxcywh(torch.tensor([[0., 0., 4., 2.]]))
    assert cxcywh.tolist() == [[2., 1., 4., 2.]]


def test_giou_equals_mmdet_bbox_overlaps():
    a, b = random_xyxy(7, 1), random_xyxy(5, 2)
    torch.testing.assert_close(generalized_box_iou(a, b),
                               bbox_overlaps(a, b, mode='giou'))


def test_giou_properties():
    a = random_xyxy(6, 3)
    giou = generalized_box_iou(a, a)
    torch.testing.assert_close(giou.diagonal(), torch.ones(6))
    assert (giou <= 1 + 1e-6).all() and (giou >= -1 - 1e-6).all()
    far = (torch.tensor([[0., 0., 1., 1.]]),
           torch.tensor([[99., 99., 100., 100.]]))
    assert generalized_box_iou(*far).item() < -0.99


def test_degenerate_boxes_stay_finite():
    boxes = torch.tensor([[1., 1., 1., 1.], [0., 0., 0., 0.],
                          [2., 2., 3., 3.]])
    assert torch.isfinite(generalized_box_iou(boxes, boxes)).all()


def test_inverse_sigmoid():
    x = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0])
    y = inverse_sigmoid(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[1:4].sigmoid(), x[1:4])
