"""Is this installation able to run mmdet_detr? Versions, compiled ops,
devices and the known incompatibilities, each with the command that fixes
it.

:func:`cheap_findings` reads package metadata only (no import of torch or
mmcv, well under a second) and runs when ``mmdet_detr`` is imported, so a
broken installation stops with its fix instead of a traceback from deep
inside mmcv. :func:`full_findings` imports the stack, loads mmcv's compiled
ops, runs one and looks at the GPUs; ``tools/check_env.py`` prints both.
"""
import glob
import importlib.metadata as metadata
import os.path as osp
import platform
import re
from typing import Dict, List, NamedTuple, Optional

from packaging.version import Version

PACKAGES = ('torch', 'mmengine', 'mmcv', 'mmdet', 'numpy', 'pycocotools',
            'scipy')
# mmdet 3.3.0 refuses other mmcv versions at import (mmdet/__init__.py).
MMCV_RANGE = ('2.0.0rc4', '2.2.0')
MMENGINE_RANGE = ('0.7.1', '1.0.0')
REINSTALL_MMCV = ('.venv/bin/pip uninstall -y mmcv mmcv-lite && bash '
                  'tools/install_mmcv.sh .venv/bin/python')


class Finding(NamedTuple):
    """One check: ``ok``, what was found, and the fix when not ok."""
    name: str
    ok: bool
    detail: str
    fix: str = ''


def installed_versions() -> Dict[str, Optional[str]]:
    """``{package: version or None}`` from the installed metadata."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def mmcv_ext_files() -> List[str]:
    """The compiled ops library of the installed mmcv (empty for
    mmcv-lite or no mmcv), found without importing mmcv."""
    try:
        root = metadata.distribution('mmcv').locate_file('mmcv')
    except metadata.PackageNotFoundError:
        return []
    return sorted(glob.glob(osp.join(str(root), '_ext*.so')) +
                  glob.glob(osp.join(str(root), '_ext*.pyd')))


def cheap_findings(versions: Dict[str, Optional[str]],
                   ext_files: List[str]) -> List[Finding]:
    """The checks that need package metadata only."""
    found = []
    for name in ('torch', 'mmengine', 'mmcv', 'mmdet'):
        if versions.get(name) is None:
            found.append(
                Finding(name, False, 'not installed',
                        'make setup (or pip install -r requirements.txt, then '
                        + (REINSTALL_MMCV if name == 'mmcv' else
                           f'pip install {name}') + ')'))
    mmcv, mmengine = versions.get('mmcv'), versions.get('mmengine')
    if mmcv is not None:
        low, high = MMCV_RANGE
        in_range = Version(low) <= Version(mmcv) < Version(high)
        found.append(
            Finding(
                'mmcv version', in_range, f'mmcv {mmcv}; mmdet 3.3 needs '
                f'>={low}, <{high}', '' if in_range else REINSTALL_MMCV))
        found.append(
            Finding(
                'mmcv compiled ops', bool(ext_files),
                ext_files[0] if ext_files else
                'mmcv has no _ext library (mmcv-lite, or built without '
                'MMCV_WITH_OPS=1)', '' if ext_files else REINSTALL_MMCV))
    if mmengine is not None:
        low, high = MMENGINE_RANGE
        in_range = Version(low) <= Version(mmengine) < Version(high)
        found.append(
            Finding(
                'mmengine version', in_range, f'mmengine {mmengine}; mmdet '
                f'3.3 needs >={low}, <{high}',
                '' if in_range else '.venv/bin/pip install mmengine==0.10.7'))
    numpy, coco = versions.get('numpy'), versions.get('pycocotools')
    if numpy is not None and coco is not None:
        # pycocotools wheels before 2.0.8 are compiled against numpy 1 and
        # fail to import under numpy 2 ("numpy.dtype size changed").
        ok = Version(numpy) < Version('2') or Version(coco) >= Version(
            '2.0.8')
        found.append(
            Finding('numpy 2 and pycocotools', ok,
                    f'numpy {numpy}, pycocotools {coco}',
                    '' if ok else
                    '.venv/bin/pip install "pycocotools>=2.0.8"'))
    return found


def full_findings() -> List[Finding]:
    """Checks that import torch and mmcv and run one compiled op."""
    found = [Finding('python', True, platform.python_version())]
    import torch
    found.append(Finding('torch', True, torch.__version__))
    try:
        import mmcv.ops
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        mmcv.ops.nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
        found.append(
            Finding(
                'mmcv ops load and run', True,
                f'compiled with {mmcv.ops.get_compiler_version()}, CUDA '
                f'{mmcv.ops.get_compiling_cuda_version()}'))
    except (ImportError, OSError, RuntimeError) as error:
        # An undefined symbol means the ops were compiled for another torch.
        found.append(
            Finding('mmcv ops load and run', False,
                    f'{type(error).__name__}: {error}', REINSTALL_MMCV))
    found += _cuda_findings(torch)
    found.append(_checkpoint_loading_finding(torch))
    return found


def _cuda_findings(torch) -> List[Finding]:
    if not torch.cuda.is_available():
        return [Finding('CUDA devices', True, 'none (CPU only)')]
    mmcv_archs = sorted(
        set(
            re.findall(rb'sm_(\d+)',
                       _read(mmcv_ext_files()[0]) if mmcv_ext_files()
                       else b'')))
    found = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        arch = f'{major}{minor}'.encode()
        ok = not mmcv_archs or arch in mmcv_archs
        found.append(
            Finding(
                f'cuda:{i}', ok, f'{torch.cuda.get_device_name(i)}, sm_'
                f'{arch.decode()}; torch built for '
                f'{" ".join(torch.cuda.get_arch_list())}; mmcv built for '
                f'{" ".join("sm_" + a.decode() for a in mmcv_archs)}',
                '' if ok else
                f'TORCH_CUDA_ARCH_LIST="{major}.{minor}" {REINSTALL_MMCV}'))
    return found


def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _checkpoint_loading_finding(torch) -> Finding:
    # torch >= 2.6 loads with weights_only=True by default, and mmengine
    # 0.10.7's checkpoints hold numpy and HistoryBuffer objects.
    from mmdet_detr.checkpoint.loader import (install_safe_local_loader,
                                              safe_local_loader_installed)
    install_safe_local_loader()
    new_torch = Version(torch.__version__.split('+')[0]) >= Version('2.6')
    return Finding(
        'checkpoint loading', safe_local_loader_installed(),
        f'torch {torch.__version__}: ' +
        ('weights_only by default; mmengine checkpoints load through '
         'mmdet_detr.checkpoint.safe_load (never set weights_only=False)'
         if new_torch else 'weights_only loading through '
         'mmdet_detr.checkpoint.safe_load'),
        'import mmdet_detr.engine before loading checkpoints')


class BrokenInstallError(ImportError):
    """The installation cannot run mmdet_detr; the message says the fix."""


def check_install() -> None:
    """Raise :class:`BrokenInstallError` listing every failed cheap check
    with its fix."""
    failed = [
        f for f in cheap_findings(installed_versions(), mmcv_ext_files())
        if not f.ok
    ]
    if failed:
        raise BrokenInstallError(
            'mmdet_detr cannot run with this installation:\n' +
            '\n'.join(f'  - {f.name}: {f.detail}\n    fix: {f.fix}'
                      for f in failed) +
            '\n(python tools/check_env.py prints the full report)')
