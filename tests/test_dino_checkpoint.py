"""mmdet 3.3 DINO checkpoints -> this project, and the checks made when a
DINO checkpoint is loaded.

mmdet's DINO and this project's are built from the parity test's config
(test_dino_parity.py); mmdet's perturbed weights are saved the way mmdet
saves them, converted by ``convert_checkpoint(..., 'mmdet')`` and loaded
through mmengine's ``load_checkpoint`` (the path of ``tools/test.py`` and
``load_from``); predictions must agree to 1e-5.
"""
import os.path as osp

import pytest
import torch
from mmdet_twins import assert_predictions_match, dino_config
from mmengine.runner import Runner, load_checkpoint

from mmdet_detr.benchmark import build_model_pair
from mmdet_detr.checkpoint.loader import (ForeignCheckpointError,
                                          prepare_state_dict)
from mmdet_detr.checkpoint.sources import convert_checkpoint, recognise
from mmdet_detr.engine import cli

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_DINO = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_dino.py')
TINY_DEFORMABLE = osp.join(REPO_ROOT, 'tests', 'configs',
                           'tiny_deformable_detr.py')


def test_converted_mmdet_dino_predicts_the_same_and_unconverted_is_refused(
        tmp_path):
    ours, reference = build_model_pair(dino_config(dropout=0.0), True)
    src, dst = str(tmp_path / 'mmdet.pth'), str(tmp_path / 'ours.pth')
    meta = dict(epoch=12, dataset_meta=dict(classes=tuple('abcde')))
    torch.save(dict(meta=meta, state_dict=reference.state_dict()), src)

    # Loaded as it is, it is refused with the command that converts it.
    assert recognise(reference.state_dict()) == 'mmdet'
    with pytest.raises(ForeignCheckpointError) as error:
        prepare_state_dict(ours, reference.state_dict(), src)
    assert "mmdet 3.3's DeformableDETR, DINO or DETR" in str(error.value)
    assert (f'python tools/convert_checkpoint.py {src} '
            f'{src[:-4]}_converted.pth --from mmdet') in str(error.value)

    converted = convert_checkpoint(src, dst, 'mmdet')
    assert converted.variant == 'dino'
    assert converted.config == 'configs/dino_4scale_r50_12e.py'
    # The improved model has the same parameters: the variant says.
    improved = convert_checkpoint(src, str(tmp_path / 'improved.pth'),
                                  'mmdet', 'dino_improved')
    assert improved.config == 'configs/dino_4scale_r50_improved_12e.py'
    with pytest.raises(ValueError, match='--variant refine does not apply'):
        convert_checkpoint(src, str(tmp_path / 'x.pth'), 'mmdet', 'refine')
    with torch.no_grad():
        for p in ours.parameters():
            p.zero_()
    checkpoint = load_checkpoint(ours, dst, strict=True)
    assert checkpoint['meta']['dataset_meta'] == meta['dataset_meta']
    assert_predictions_match(reference, ours, box_atol=1e-5 * 128)


def test_checkpoint_of_another_model_or_variant_is_refused(tmp_path):
    def state_dict(config, **options):
        cfg = cli.load_config(config, options)
        model, _ = build_model_pair(cfg.model, compare_mmdet=False)
        return model.state_dict()

    cfg = cli.load_config(TINY_DINO, None)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=state_dict(TINY_DEFORMABLE)), path)
    with pytest.raises(ValueError, match='another model variant') as info:
        runner.load_checkpoint(path)
    # DINO's own parts are missing, Deformable DETR's reference point layer
    # is unexpected.
    assert 'keys missing' in str(info.value)
    assert 'keys unexpected (reference_points_fc.weight' in str(info.value)
    torch.save(dict(state_dict=state_dict(
        TINY_DINO, **{'model.num_queries': 12})), path)
    with pytest.raises(ValueError, match=r'keys of another shape '
                       r'\(.*query_embedding.weight'):
        runner.load_checkpoint(path)
    # Another number of classes loads: the classifiers and the label
    # embedding are re-initialised (fine-tuning).
    torch.save(dict(state_dict=state_dict(
        TINY_DINO, **{'model.bbox_head.num_classes': 7})), path)
    runner.load_checkpoint(path)
