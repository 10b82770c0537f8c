"""The Hungarian assigner: optimal, one-to-one, and robust at the edges."""
import itertools
import warnings

import pytest
import torch

from mmdet_detr.models.assigners.hungarian_assigner import HungarianAssigner
from mmdet_detr.models.assigners.match_costs import (BBoxL1Cost,
                                                     ClassificationCost,
                                                     FocalLossCost, GIoUCost)

COSTS = [
    dict(type='FocalLossCost', weight=2.0),
    dict(type='BBoxL1Cost', weight=5.0),
    dict(type='GIoUCost', weight=2.0)
]


def random_boxes(n, generator):
    centres = torch.rand(n, 2, generator=generator) * 0.8 + 0.1
    sizes = torch.rand(n, 2, generator=generator) * 0.3 + 0.02
    return torch.cat([centres, sizes], -1)


def total_cost(assigner, logits, boxes, labels, gt_boxes):
    return assigner._cost(logits[None], boxes[None], labels, gt_boxes)[0]


@pytest.mark.parametrize('seed', range(6))
def test_assignment_is_optimal_by_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    Q, G, K = 5, 3, 4
    assigner = HungarianAssigner(COSTS)
    logits = torch.randn(1, 1, Q, K, generator=generator)
    boxes = random_boxes(Q, generator)[None, None]
    labels = torch.randint(0, K, (G, ), generator=generator)
    gt_boxes = random_boxes(G, generator)
    (query_idx, target_idx), = assigner.assign(logits, boxes, [labels],
                                               [gt_boxes])[0]
    cost = total_cost(assigner, logits[0, 0], boxes[0, 0], labels, gt_boxes)
    best = min(
        sum(cost[q, g] for g, q in enumerate(perm))
        for perm in itertools.permutations(range(Q), G))
    found = cost[query_idx, target_idx].sum()
    torch.testing.assert_close(found, torch.as_tensor(best), rtol=0,
                               atol=1e-5)
    assert sorted(target_idx.tolist()) == list(range(G))
    assert len(set(query_idx.tolist())) == G


def test_batched_layers_equal_one_by_one():
    generator = torch.Generator().manual_seed(7)
    T, B, Q, K = 3, 2, 6, 5
    assigner = HungarianAssigner(COSTS)
    logits = torch.randn(T, B, Q, K, generator=generator)
    boxes = random_boxes(T * B * Q, generator).view(T, B, Q, 4)
    labels = [torch.tensor([1, 2]), torch.tensor([0, 4, 4])]
    gt_boxes = [random_boxes(2, generator), random_boxes(3, generator)]
    batched = assigner.assign(logits, boxes, labels, gt_boxes)
    for t in range(T):
        for b in range(B):
            (single, ), = assigner.assign(logits[t:t + 1, b:b + 1],
                                          boxes[t:t + 1, b:b + 1],
                                          [labels[b]], [gt_boxes[b]])
            assert torch.equal(batched[t][b][0], single[0])
            assert torch.equal(batched[t][b][1], single[1])


def test_zero_targets_match_nothing():
    assigner = HungarianAssigner(COSTS)
    matches = assigner.assign(
        torch.randn(2, 1, 4, 3), torch.rand(2, 1, 4, 4),
        [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, 4)])
    for layer in matches:
        query_idx, target_idx = layer[0]
        assert query_idx.numel() == 0 and target_idx.numel() == 0
        assert query_idx.dtype == torch.long


def test_more_targets_than_queries_matches_all_queries_and_warns_once():
    generator = torch.Generator().manual_seed(3)
    Q, G = 3, 5
    assigner = HungarianAssigner(COSTS)
    labels = torch.zeros(G, dtype=torch.long)
    gt_boxes = random_boxes(G, generator)
    logits = torch.randn(1, 1, Q, 2, generator=generator)
    boxes = random_boxes(Q, generator)[None, None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        (query_idx, target_idx), = assigner.assign(logits, boxes, [labels],
                                                   [gt_boxes])[0]
        assigner.assign(logits, boxes, [labels], [gt_boxes])
    assert len([w for w in caught if 'num_queries' in str(w.message)]) == 1
    assert sorted(query_idx.tolist()) == list(range(Q))
    assert len(set(target_idx.tolist())) == Q
    cost = total_cost(assigner, logits[0, 0], boxes[0, 0], labels, gt_boxes)
    best = min(
        sum(cost[q, g] for q, g in enumerate(perm))
        for perm in itertools.permutations(range(G), Q))
    torch.testing.assert_close(cost[query_idx, target_idx].sum(),
                               torch.as_tensor(best), rtol=0, atol=1e-5)


def test_non_finite_predictions_are_reported():
    assigner = HungarianAssigner(COSTS)
    boxes = torch.rand(1, 1, 3, 4)
    boxes[0, 0, 1, 0] = float('nan')
    with pytest.raises(FloatingPointError, match='not finite'):
        assigner.assign(torch.randn(1, 1, 3, 2), boxes,
                        [torch.tensor([0])], [torch.rand(1, 4)])


def test_costs_prefer_the_right_prediction():
    gt_labels = torch.tensor([1])
    gt_boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.05, 0.05]]])
    logits = torch.tensor([[[-5.0, 5.0], [5.0, -5.0]]])
    for cost in (FocalLossCost(), ClassificationCost(), BBoxL1Cost(),
                 GIoUCost()):
        value = cost(logits, boxes, gt_labels, gt_boxes)
        assert value.shape == (1, 2, 1)
        assert value[0, 0, 0] < value[0, 1, 0], type(cost).__name__
