"""tools/train.py keeps what a user made: a second run into a work dir with
checkpoints is refused (``--overwrite`` first moves them aside), ``--resume``
with nothing to resume is refused, and a missing ``load_from`` or ``_base_``
file is named before anything is built."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmdet_detr.checkpoint.safe_load import load_checkpoint_file
from mmdet_detr.datasets.shapes import make_shapes_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TINY = {
    name: osp.join(REPO_ROOT, 'tests', 'configs', f'tiny_{name}.py')
    for name in ('deformable_detr', 'detr')
}
ONE_EPOCH = [
    '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10'
]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('work_dir')
    make_shapes_dataset(str(root / 'data' / 'shapes'), num_train=2,
                        num_val=1, seed=0, image_size=64,
                        show_progress=False)
    return root


def _train(root, *args):
    return subprocess.run(
        [sys.executable, TRAIN, *args], cwd=root,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=300)


def _model_type(path):
    cfg = load_checkpoint_file(path)['meta']['cfg']
    return 'DETR' if "type='DETR'" in cfg else 'DeformableDETR'


def test_another_config_into_the_same_work_dir_keeps_the_first_model(root):
    work_dir = str(root / 'shared')
    first = _train(root, TINY['deformable_detr'], '--work-dir', work_dir,
                   *ONE_EPOCH)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert _model_type(checkpoint) == 'DeformableDETR'

    second = _train(root, TINY['detr'], '--work-dir', work_dir, *ONE_EPOCH)
    assert second.returncode == 2
    assert (f'work dir {work_dir!r} already holds the checkpoints of an '
            'earlier run (epoch_1.pth)') in second.stderr
    assert '--resume' in second.stderr and '--overwrite' in second.stderr
    assert _model_type(checkpoint) == 'DeformableDETR'

    third = _train(root, TINY['detr'], '--work-dir', work_dir, '--overwrite',
                   *ONE_EPOCH)
    assert third.returncode == 0, third.stderr[-3000:]
    earlier = [d for d in os.listdir(work_dir) if d.startswith('earlier_')]
    assert len(earlier) == 1
    kept = osp.join(work_dir, earlier[0])
    assert sorted(os.listdir(kept)) == ['epoch_1.pth', 'last_checkpoint']
    assert _model_type(osp.join(kept, 'epoch_1.pth')) == 'DeformableDETR'
    assert _model_type(checkpoint) == 'DETR'

    resumed = _train(root, TINY['detr'], '--work-dir', work_dir, '--resume',
                     '--cfg-options', 'train_cfg.max_epochs=2',
                     'train_cfg.val_interval=10')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))


def test_resume_without_a_checkpoint_is_refused(root):
    work_dir = str(root / 'mistyped')
    proc = _train(root, TINY['detr'], '--work-dir', work_dir, '--resume',
                  *ONE_EPOCH)
    assert proc.returncode == 2
    assert (f'--resume: work dir {work_dir!r} has no last_checkpoint file'
            in proc.stderr)
    assert not osp.exists(osp.join(work_dir, 'epoch_1.pth'))


def test_missing_load_from_is_named_before_the_model_is_built(root):
    proc = _train(root, TINY['detr'], '--work-dir', str(root / 'load'),
                  '--cfg-options', 'load_from=missing/model.pth')
    assert proc.returncode == 2
    assert "load_from: checkpoint file 'missing/model.pth' does not exist" \
        in proc.stderr
    assert 'Traceback' not in proc.stderr + proc.stdout


def test_missing_base_file_names_the_config_that_includes_it(root):
    broken = root / 'broken_base.py'
    broken.write_text("_base_ = ['./no_such_base.py']\n")
    child = root / 'child.py'
    child.write_text("_base_ = './broken_base.py'\n")
    proc = _train(root, str(child))
    assert proc.returncode == 2
    assert (f"config {str(broken)!r}: its _base_ file './no_such_base.py' "
            'does not exist') in proc.stderr
    assert repr(str(child)) in proc.stderr
