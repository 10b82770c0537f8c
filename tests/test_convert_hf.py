"""HuggingFace ``DeformableDetrForObjectDetection`` -> this project: the
converted model computes the same logits and boxes (1e-4).

Both models are tiny and random (sizes in convert_helpers.py; the HF
backbone is transformers' own ``ResNetConfig``, not timm), and every HF
parameter and BatchNorm statistic is perturbed so that none sits at a
degenerate initial value. The HF model keeps 91 category-id logits, as the
published ``SenseTime/deformable-detr*`` models do, so the mapping to the
80 classes is exercised.
"""
import pytest
import torch
from convert_helpers import (BASE_CHANNELS, DECODER_LAYERS, EMBED,
                             ENCODER_LAYERS, FFN, HEADS, POINTS, QUERIES,
                             assert_predicts_like_hf, perturb_, tiny_model)

from mmdet_detr.checkpoint.converters.coco_classes import COCO_CATEGORY_IDS
from mmdet_detr.checkpoint.converters.deformable_detr_hf import (
    convert_hf, convert_hf_state_dict)
from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          check_checkpoint_file)

transformers = pytest.importorskip('transformers')


def hf_model(variant: str):
    config = transformers.DeformableDetrConfig(
        backbone_config=transformers.ResNetConfig(
            embedding_size=BASE_CHANNELS,
            hidden_sizes=[BASE_CHANNELS * 2**i for i in range(4)],
            depths=[2, 2, 2, 2], layer_type='basic',
            out_features=['stage2', 'stage3', 'stage4']),
        d_model=EMBED, encoder_layers=ENCODER_LAYERS,
        decoder_layers=DECODER_LAYERS, encoder_ffn_dim=FFN,
        decoder_ffn_dim=FFN, encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS, encoder_n_points=POINTS,
        decoder_n_points=POINTS, num_queries=QUERIES,
        two_stage_num_proposals=QUERIES, num_labels=91,
        with_box_refine=variant != 'plain',
        two_stage=variant == 'refine_twostage')
    torch.manual_seed(0)
    model = transformers.DeformableDetrForObjectDetection(config)
    perturb_(model)
    return model.eval()


@pytest.mark.parametrize('variant', ['plain', 'refine', 'refine_twostage'])
def test_converted_hf_model_predicts_the_same(variant, tmp_path):
    reference = hf_model(variant)
    # What save_pretrained writes: tied copies are left out.
    reference.save_pretrained(str(tmp_path))
    converted = convert_hf(str(tmp_path))
    assert converted.variant == variant
    assert converted.config.startswith('configs/converted/')
    ours = tiny_model(variant, num_classes=80, conv_bias=True)
    result = ours.load_state_dict(converted.state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    assert_predicts_like_hf(ours, reference, f'hf {variant}')


def test_hf_file_is_refused_with_the_exact_command(tmp_path):
    hf_model('plain').save_pretrained(str(tmp_path))
    weights = str(tmp_path / 'model.safetensors')
    with pytest.raises(ForeignCheckpointError) as error:
        check_checkpoint_file(weights)
    assert (f'python tools/convert_checkpoint.py {weights} '
            f'{tmp_path / "model_converted.pth"} --from hf') in str(
                error.value)


def test_full_state_dict_with_transformers4_names_converts_the_same():
    """The published files were written by transformers 4: every tied copy
    is stored, under the older names."""
    reference = hf_model('refine_twostage')
    state_dict = reference.state_dict()
    legacy = {}
    for key, value in state_dict.items():
        key = key.replace('model.backbone.', 'model.backbone.conv_encoder.')
        key = key.replace('.self_attn.o_proj.', '.self_attn.out_proj.')
        key = key.replace('.mlp.fc', '.fc')
        legacy[key] = value
    assert len(legacy) == len(state_dict)
    new = convert_hf_state_dict(state_dict).state_dict
    old = convert_hf_state_dict(legacy).state_dict
    assert list(new) == list(old)
    for key in new:
        assert torch.equal(new[key], old[key]), key


def test_coco_category_ids():
    """mmdet's 80 classes are the COCO ids 1..90 without the 10 unused."""
    unused = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert COCO_CATEGORY_IDS == [i for i in range(1, 91) if i not in unused]
