"""Check the installation: ``python tools/check_env.py``.

Prints the versions of Python, torch, mmengine, mmcv, mmdet, numpy,
pycocotools and scipy, whether mmcv's compiled ops load and run with this
torch, the CUDA devices and the architectures torch and mmcv were built for,
and each known incompatibility with the command that fixes it. Exits with 1
when something needs fixing.
"""
import os.path as osp
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_detr import env_check  # noqa: E402


def main() -> int:
    versions = env_check.installed_versions()
    print('packages: ' + ', '.join(f'{name} {version or "missing"}'
                                   for name, version in versions.items()))
    findings = env_check.cheap_findings(versions, env_check.mmcv_ext_files())
    findings += env_check.full_findings()
    for finding in findings:
        print(f'[{"ok" if finding.ok else "FIX"}] {finding.name}: '
              f'{finding.detail}')
        if not finding.ok:
            print(f'      fix: {finding.fix}')
    failed = sum(not f.ok for f in findings)
    print('all checks passed' if not failed else f'{failed} checks failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
