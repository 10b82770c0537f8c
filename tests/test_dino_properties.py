"""Properties of DINO: the denoising queries' grouping, noise bounds and
attention mask, a training step on images without objects, and where the
gradient of a layer's boxes goes (look forward twice)."""
import copy

import torch
from mmengine.config import Config

from mmdet_detr.benchmark import build_model_pair, synthetic_batch
from mmdet_detr.models.box_ops import box_cxcywh_to_xyxy
from mmdet_detr.models.layers.denoising_queries import (
    DenoisingLayout, DenoisingQueryGenerator, attention_mask)

TINY = 'tests/configs/tiny_dino.py'


def generator(label_noise_scale=0.0):
    return DenoisingQueryGenerator(num_classes=5, embed_dims=8,
                                   label_noise_scale=label_noise_scale,
                                   box_noise_scale=1.0,
                                   num_denoising_queries=7)


def targets():
    """Three objects in image 0, none in image 1, one in image 2."""
    labels = [torch.tensor([0, 3, 1]), torch.tensor([], dtype=torch.long),
              torch.tensor([4])]
    boxes = [torch.tensor([[0.3, 0.3, 0.2, 0.4], [0.6, 0.5, 0.3, 0.2],
                           [0.5, 0.5, 0.9, 0.9]]), torch.zeros(0, 4),
             torch.tensor([[0.2, 0.7, 0.1, 0.1]])]
    return labels, boxes


def test_queries_are_laid_out_in_groups_of_positives_then_negatives():
    torch.manual_seed(0)
    labels, boxes = targets()
    gen = generator()
    queries = gen(labels, boxes, num_matching_queries=4)
    # 7 // 3 = 2 groups of 2 * 3 queries.
    assert queries.layout == DenoisingLayout(num_groups=2, max_targets=3)
    assert queries.query.shape == (3, 12, 8)
    assert queries.reference_points.shape == (3, 12, 4)
    for b, image_labels in enumerate(labels):
        n = len(image_labels)
        for group in range(2):
            for part in (0, 3):  # positives, negatives
                start = group * 6 + part
                # Without label noise every query embeds its object's label.
                torch.testing.assert_close(
                    queries.query[b, start:start + n],
                    gen.label_embedding(image_labels))
                # Padding: no content, the reference at the centre.
                assert (queries.query[b, start + n:start + 3] == 0).all()
                assert (queries.reference_points[b, start + n:start + 3] ==
                        0.5).all()


def test_positives_stay_near_their_box_and_negatives_move_further():
    torch.manual_seed(0)
    labels = [torch.zeros(200, dtype=torch.long)]
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(200, 1)]
    noised = generator().noise(labels[0], boxes[0], num_groups=1)
    corners = box_cxcywh_to_xyxy(noised.boxes)  # 400, 4
    shift = (corners - box_cxcywh_to_xyxy(boxes[0]).repeat(2, 1)).abs()
    # box_noise_scale 1: corners move by less than half the size (0.1) for
    # positives and by 0.1 to 0.2 for negatives.
    assert (shift[:200] < 0.1 + 1e-6).all()
    assert (shift[200:] >= 0.1 - 1e-6).all()
    assert (shift[200:] < 0.2 + 1e-6).all()


def test_label_noise_replaces_about_a_quarter_of_the_labels():
    torch.manual_seed(0)
    labels = torch.zeros(4000, dtype=torch.long)
    noised = generator(label_noise_scale=0.5).noise(
        labels, torch.full((4000, 4), 0.5), num_groups=1)
    # Chosen with probability 0.25, replaced by one of 5 classes (4 of
    # which differ): 0.2 of the labels change.
    changed = (noised.labels != 0).float().mean()
    assert 0.17 < changed < 0.23


def test_mask_keeps_groups_apart_and_hides_the_answers_from_matching():
    layout = DenoisingLayout(num_groups=3, max_targets=2)
    mask = attention_mask(layout, num_matching_queries=5, device='cpu')
    D = layout.num_queries
    assert mask.shape == (D + 5, D + 5)
    group = torch.arange(D) // 4
    assert torch.equal(mask[:D, :D], group[:, None] != group[None])
    assert mask[D:, :D].all()  # matching queries do not see denoising ones
    assert not mask[:, D:].any()  # every query sees the matching queries


def test_a_batch_without_objects_has_no_denoising_queries():
    assert generator()([torch.zeros(0, dtype=torch.long)] * 2,
                       [torch.zeros(0, 4)] * 2, 4) is None


def test_training_step_on_images_without_objects():
    cfg = Config.fromfile(TINY)
    model, _ = build_model_pair(cfg.model, compare_mmdet=False)
    images, samples = synthetic_batch(2, (64, 96), num_classes=4,
                                      boxes_per_image=0)
    model.train()
    losses = model.loss(images, copy.deepcopy(samples))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['dn_loss_cls'] == 0 and losses['d0.dn_loss_bbox'] == 0
    sum(losses.values()).backward()
    # Every parameter stays in the graph (distributed training needs it).
    assert all(p.grad is not None for p in model.parameters()
               if p.requires_grad)


def test_a_layers_boxes_train_the_refinement_of_the_layer_before():
    """Look forward twice: layer 1 predicts on layer 0's refined box,
    undetached, so its box loss reaches layer 0's box branch; its input
    reference is detached, so nothing else of layer 0's branch is used."""
    cfg = Config.fromfile(TINY)
    model, _ = build_model_pair(cfg.model, compare_mmdet=False)
    images, samples = synthetic_batch(2, (64, 96), num_classes=4,
                                      boxes_per_image=3)
    model.train()
    head_inputs = model.forward_transformer(
        model.extract_feat(images), copy.deepcopy(samples))
    head = model.bbox_head
    logits, boxes = head._predict_layer(1, head_inputs.hidden_states[1],
                                        head_inputs.references[1])
    branch_0 = list(head.reg_branches[0].parameters())
    box_grads = torch.autograd.grad(boxes.sum(), branch_0,
                                    retain_graph=True, allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in box_grads)
    logit_grads = torch.autograd.grad(logits.sum(), branch_0,
                                      allow_unused=True)
    assert all(g is None or not g.any() for g in logit_grads)
