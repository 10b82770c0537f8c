"""Parity with mmdet 3.3's own DINO on identical weights.

Both models come from one config of this project (``mmdet_twins``: a
small ResNet, two layers per stack), mmdet's twin written by
``mmdet_model_config``, with the same weights; both run on the same padded
batch.

The denoising queries are random. They are made the same by injection:
this project's model runs first and its generator's ``noise`` (the noised
labels and boxes of every group, in mmdet's order) is recorded; mmdet's
``CdnQueryGenerator.generate_dn_label_query`` and
``generate_dn_bbox_query`` are then replaced, for that one call, by the
embedding of the recorded labels (with mmdet's own label embedding, so its
gradient is compared too) and the logits of the recorded boxes. Grouping,
padding, attention mask, decoding and losses are each model's own.
"""
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet_twins import (assert_losses_and_gradients_match,
                         assert_predictions_match, build_twins, dino_config,
                         key_to_ours)


def test_predictions_match_mmdet():
    reference, ours = build_twins(dino_config(dropout=0.1))
    assert_predictions_match(reference, ours, box_atol=1e-5 * 128)


def test_losses_and_gradients_match_mmdet(monkeypatch):
    # Three objects in one image, none in the other: the second image's
    # denoising queries are all padding.
    counts = (3, 0)
    config = dino_config(dropout=0.0)
    reference, ours = build_twins(config)
    generator = ours.bbox_head.denoising
    recorded = []
    noise = generator.noise
    monkeypatch.setattr(generator, 'noise',
                        lambda *args: recorded.append(noise(*args)) or
                        recorded[-1])

    def give_mmdet_our_noise():
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
            lambda boxes, num_groups: inverse_sigmoid(noised.boxes,
                                                      eps=1e-3))

    got, compared = assert_losses_and_gradients_match(
        reference, ours, key_to_ours(config), counts=counts,
        before_reference=give_mmdet_our_noise)
    assert 'dn_loss_cls' in got and 'd0.dn_loss_iou' in got
    # The denoising label embedding is trained and compared too.
    assert 'dn_query_generator.label_embedding.weight' in compared
