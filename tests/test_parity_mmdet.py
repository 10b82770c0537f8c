"""Parity with mmdet 3.3's own DeformableDETR on identical weights, every
variant: raw outputs and detections in eval mode, losses and gradients in
train mode (see ``mmdet_twins``)."""
import pytest
from mmdet_twins import (DEFORMABLE_VARIANTS,
                         assert_losses_and_gradients_match,
                         assert_predictions_match, build_twins,
                         deformable_detr_config, key_to_ours)


@pytest.mark.parametrize('variant', list(DEFORMABLE_VARIANTS))
def test_predictions_match_mmdet(variant):
    reference, ours = build_twins(deformable_detr_config(variant, 0.1))
    assert_predictions_match(reference, ours, box_atol=1e-5 * 128)


@pytest.mark.parametrize('variant', list(DEFORMABLE_VARIANTS))
def test_losses_and_gradients_match_mmdet(variant):
    config = deformable_detr_config(variant, 0.0)
    reference, ours = build_twins(config)
    assert_losses_and_gradients_match(reference, ours, key_to_ours(config))
