"""Resuming a DINO run is exact: the denoising queries are drawn from the
global random generator, whose state the checkpoint restores, so the
second epoch of a resumed run has the losses of an uninterrupted run."""
import glob
import json
import os.path as osp

from mmdet_detr.datasets.shapes import make_shapes_dataset
from mmdet_detr.engine import cli

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_DINO = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_dino.py')


def _train(work_dir, max_epochs, resume=None):
    cfg = cli.load_config(
        TINY_DINO, {
            'train_cfg.max_epochs': max_epochs,
            'train_cfg.val_interval': 10,  # no validation
            'train_dataloader.batch_size': 2,
            'randomness.deterministic': True,
            'default_hooks.logger.interval': 1,
        }, work_dir)
    cli.apply_resume(cfg, resume)
    cli.build_runner(cfg).train()


def _losses(work_dir):
    """{iteration: [loss of every run logged in work_dir]}."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'dn_loss_cls' in record:
                    losses.setdefault(record['step'], []).append(
                        (record['loss'], record['dn_loss_bbox']))
    return losses


def test_resumed_run_has_the_losses_of_an_uninterrupted_one(tmp_path,
                                                            monkeypatch):
    make_shapes_dataset(str(tmp_path / 'data' / 'shapes'), num_train=4,
                        num_val=1, seed=0, image_size=64,
                        show_progress=False)
    monkeypatch.chdir(tmp_path)
    _train(str(tmp_path / 'whole'), 2)
    _train(str(tmp_path / 'parts'), 1)
    _train(str(tmp_path / 'parts'), 2, resume='auto')
    expected = _losses(str(tmp_path / 'whole'))
    got = _losses(str(tmp_path / 'parts'))
    assert sorted(expected) == sorted(got) == [1, 2, 3, 4]
    for step in (3, 4):  # the second epoch, after the resume
        assert got[step] == expected[step], step
