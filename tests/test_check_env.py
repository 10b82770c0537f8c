"""tools/check_env.py and the installation check at import."""
import os.path as osp
import subprocess
import sys
import textwrap

from mmdet_detr import env_check

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GOOD = dict(
    torch='2.13.0',
    mmengine='0.10.7',
    mmcv='2.1.0',
    mmdet='3.3.0',
    numpy='2.4.6',
    pycocotools='2.0.11',
    scipy='1.17.1')
EXT = ['/site-packages/mmcv/_ext.cpython-311-x86_64-linux-gnu.so']


def _failed(versions, ext=EXT):
    return {
        f.name: f
        for f in env_check.cheap_findings(versions, ext) if not f.ok
    }


def test_known_incompatibilities_name_their_fix():
    assert _failed(GOOD) == {}
    bad = _failed(dict(GOOD, mmcv='2.2.0'))
    assert list(bad) == ['mmcv version']
    assert 'install_mmcv.sh' in bad['mmcv version'].fix
    assert list(_failed(GOOD, ext=[])) == ['mmcv compiled ops']
    assert list(_failed(dict(GOOD, mmengine='1.0.0'))) == ['mmengine version']
    bad = _failed(dict(GOOD, pycocotools='2.0.7'))
    assert bad['numpy 2 and pycocotools'].fix.endswith(
        'pip install "pycocotools>=2.0.8"')
    assert _failed(dict(GOOD, numpy='1.26.4', pycocotools='2.0.7')) == {}
    missing = _failed(dict(GOOD, mmdet=None))
    assert missing['mmdet'].detail == 'not installed'


def test_this_installation_passes():
    assert env_check.mmcv_ext_files()
    versions = env_check.installed_versions()
    assert all(versions[name] for name in ('torch', 'mmcv', 'mmdet'))
    env_check.check_install()
    full = {f.name: f for f in env_check.full_findings()}
    assert full['mmcv ops load and run'].ok
    assert full['checkpoint loading'].ok


def test_import_stops_a_broken_install_with_the_fix():
    # mmcv 2.2.0, which mmdet 3.3 refuses, as the package metadata says.
    script = textwrap.dedent('''
        import importlib.metadata as metadata
        real = metadata.version
        metadata.version = lambda n: '2.2.0' if n == 'mmcv' else real(n)
        import mmdet_detr
    ''')
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()
    assert any('BrokenInstallError: mmdet_detr cannot run' in line
               for line in last)
    assert 'mmcv 2.2.0; mmdet 3.3 needs >=2.0.0rc4, <2.2.0' in proc.stderr
    assert 'fix: .venv/bin/pip uninstall -y mmcv' in proc.stderr
    # Nothing deep inside mmcv or mmdet ran.
    assert 'mmdet/__init__.py' not in proc.stderr


def test_check_env_tool_reports():
    proc = subprocess.run(
        [sys.executable,
         osp.join(REPO_ROOT, 'tools', 'check_env.py')],
        capture_output=True,
        text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith('packages: torch ')
    for name in ('mmcv ', 'mmdet ', 'pycocotools ', 'numpy '):
        assert name in out.splitlines()[0]
    assert '[ok] mmcv ops load and run' in out
    assert '[ok] CUDA devices' in out or '[ok] cuda:0' in out
    assert out.rstrip().endswith('all checks passed')
