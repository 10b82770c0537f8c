"""Build script of ``mmdet_detr``; metadata lives in setup.cfg.

Install with ``pip install --no-build-isolation -e .`` into an environment that
already has torch: the optional C++ extension ``mmdet_detr.ops._C`` compiles
against the torch found at build time. The extension is built only when its
sources ``mmdet_detr/ops/csrc/*.cpp`` exist; the package imports without it.
"""
import glob
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC_DIR = os.path.join('mmdet_detr', 'ops', 'csrc')


def read_version():
    """Read ``__version__`` from the package without importing it (importing
    it needs mmdet, which need not be installed when this script runs)."""
    path = os.path.join(HERE, 'mmdet_detr', '__init__.py')
    with open(path, encoding='utf-8') as f:
        match = re.search(r"^__version__ = '([^']+)'", f.read(), re.M)
    if match is None:
        raise RuntimeError(f"{path} has no line `__version__ = 'X.Y.Z'`")
    return match.group(1)


def read_requirements(path):
    """Requirement lines of ``path``, without comments and blank lines."""
    with open(os.path.join(HERE, path), encoding='utf-8') as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def extension_build():
    """``(ext_modules, cmdclass)`` for ``mmdet_detr.ops._C``; empty when
    ``mmdet_detr/ops/csrc`` holds no ``.cpp`` file."""
    # Relative paths: setuptools refuses absolute ones in ``sources``.
    sources = sorted(glob.glob(os.path.join(CSRC_DIR, '*.cpp')))
    if not sources:
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError as error:
        raise RuntimeError(
            f'Building mmdet_detr.ops._C from {CSRC_DIR}/*.cpp needs torch '
            f'at build time, but `import torch` failed ({error}). Install '
            'torch first, then run `pip install --no-build-isolation -e .` '
            '(or `make setup`).') from error
    extension = CppExtension(
        name='mmdet_detr.ops._C',
        sources=sources,
        include_dirs=[os.path.join(HERE, CSRC_DIR)],
        extra_compile_args=['-O3', '-fopenmp'],
        extra_link_args=['-fopenmp'])
    return [extension], {'build_ext': BuildExtension}


ext_modules, cmdclass = extension_build()

setup(
    version=read_version(),
    packages=find_packages(include=['mmdet_detr', 'mmdet_detr.*']),
    install_requires=read_requirements('requirements.txt'),
    extras_require={
        'tests': read_requirements(os.path.join('requirements', 'tests.txt')),
        'deploy': read_requirements(os.path.join('requirements', 'deploy.txt'))
    },
    # Read at run time: the kernel header and the OpenVINO extension's
    # sources, built on first use (mmdet_detr.deploy.custom_op).
    package_data={
        'mmdet_detr':
        ['ops/csrc/*.h', 'ops/csrc/*.cpp', 'deploy/custom_op/openvino/*']
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False)
