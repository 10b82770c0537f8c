"""tools/convert_checkpoint.py as a command: it names the variant and the
config to test with, and refuses to write over a file or to guess."""
import os.path as osp
import runpy
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO_ROOT, 'tools', 'convert_checkpoint.py')

pytest.importorskip('transformers')


def run_tool(monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', [TOOL, *args])
    runpy.run_path(TOOL, run_name='__main__')


def test_tool_converts_names_the_config_and_never_overwrites(
        tmp_path, monkeypatch, capsys):
    from test_convert_hf import hf_model
    hf_model('refine_twostage').save_pretrained(str(tmp_path / 'hf'))
    src, dst = str(tmp_path / 'hf'), str(tmp_path / 'out.pth')

    run_tool(monkeypatch, src, dst, '--from', 'hf')
    printed = capsys.readouterr().out
    assert 'variant refine_twostage' in printed
    assert ('python tools/test.py '
            'configs/converted/deformable_detr_refine_twostage_r50.py '
            f'{dst}') in printed
    assert '91 COCO category ids -> the 80 classes' in printed
    assert osp.isfile(dst)

    with pytest.raises(SystemExit, match='never overwritten'):
        run_tool(monkeypatch, src, dst, '--from', 'hf')
    with pytest.raises(SystemExit, match='does not match'):
        run_tool(monkeypatch, src, dst + '2', '--from', 'hf', '--variant',
                 'plain')
    with pytest.raises(SystemExit, match='does not exist'):
        run_tool(monkeypatch, str(tmp_path / 'none.pth'), dst + '3',
                 '--from', 'official')
    assert not osp.exists(dst + '2') and not osp.exists(dst + '3')
