"""The custom attention node in OpenVINO: an extension library compiled
from this package's sources against the installed openvino wheel.

The wheel ships OpenVINO's headers and CMake package config, so the library
(``openvino/ms_deform_attn_op.cpp``, which includes the CPU kernel's loops
from ``mmdet_detr/ops/csrc/ms_deform_attn_kernel.h``) is built with cmake
and a C++17 compiler on first use, in about 25 s on 2 cores, into
``${XDG_CACHE_HOME:-~/.cache}/mmdet_detr/openvino_ext/<key>/``, where the key
hashes the sources and the openvino version and place; later calls load it
from there.
"""
import hashlib
import os
import os.path as osp
import shutil
import subprocess
import tempfile
from typing import List, Optional, Union

import onnx
import openvino as ov

from .node import attention_nodes, load_model, missing_op_message

SOURCE_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'openvino')
KERNEL_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'ops',
    'csrc')
LIBRARY_NAME = 'libmmdet_detr_openvino_extension.so'


def extension_sources() -> List[str]:
    """The files the library is built from."""
    return [
        osp.join(SOURCE_DIR, 'CMakeLists.txt'),
        osp.join(SOURCE_DIR, 'ms_deform_attn_op.cpp'),
        osp.join(KERNEL_DIR, 'ms_deform_attn_kernel.h')
    ]


def extension_cache_dir() -> str:
    """The folder of the library built from the present sources for the
    installed openvino."""
    # The library links to the libraries of this openvino, by path.
    digest = hashlib.sha256(
        f'{ov.get_version()} {osp.abspath(ov.__file__)}'.encode())
    for path in extension_sources():
        with open(path, 'rb') as f:
            digest.update(f.read())
    cache_root = os.environ.get('XDG_CACHE_HOME') or osp.expanduser(
        '~/.cache')
    return osp.join(cache_root, 'mmdet_detr', 'openvino_ext',
                    digest.hexdigest()[:16])


def _openvino_cmake_dir() -> str:
    path = osp.join(osp.dirname(osp.abspath(ov.__file__)), 'cmake')
    if not osp.isfile(osp.join(path, 'OpenVINOConfig.cmake')):
        raise RuntimeError(
            f'The openvino package at {osp.dirname(ov.__file__)} has no '
            'cmake/OpenVINOConfig.cmake, so the mmdet_detr extension cannot '
            'be built against it; install the openvino wheel from PyPI '
            '(the deploy extra pins it).')
    return path


def _run(command: List[str], log_path: str) -> None:
    with open(log_path, 'a') as log:
        log.write('$ ' + ' '.join(command) + '\n')
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise RuntimeError(
            f'Building the OpenVINO extension failed at `{" ".join(command)}`'
            f' (exit {done.returncode}); the full log is {log_path}. Its '
            f'end:\n{tail}')


def build_openvino_extension(out_dir: str) -> str:
    """Configure and build the library with cmake into ``out_dir``; returns
    its path. Needs cmake (>= 3.13) and a C++17 compiler on PATH."""
    compiler = os.environ.get('CXX') or 'c++'
    missing = [
        tool for tool in ('cmake', compiler) if shutil.which(tool) is None
    ]
    if missing:
        raise RuntimeError(
            'The OpenVINO extension of mmdet_detr is compiled on first use, '
            f'which needs {" and ".join(missing)} on PATH (not found). '
            'Install them, e.g. `apt-get install cmake g++`, or build the '
            'library elsewhere and put it in ' + extension_cache_dir())
    cmake_dir = _openvino_cmake_dir()
    os.makedirs(out_dir, exist_ok=True)
    build_dir = tempfile.mkdtemp(prefix='build-', dir=out_dir)
    log_path = osp.join(build_dir, 'build.log')
    _run([
        'cmake', '-S', SOURCE_DIR, '-B', build_dir,
        f'-DOpenVINO_DIR={cmake_dir}', f'-DTBB_DIR={cmake_dir}',
        f'-DMSDA_KERNEL_DIR={KERNEL_DIR}', '-DCMAKE_BUILD_TYPE=Release'
    ], log_path)
    _run(['cmake', '--build', build_dir, '--parallel', '2'], log_path)
    # A rename publishes the library whole, also to a process that builds
    # the same key at the same time.
    library = osp.join(out_dir, LIBRARY_NAME)
    os.replace(osp.join(build_dir, LIBRARY_NAME), library)
    shutil.rmtree(build_dir, ignore_errors=True)
    return library


def openvino_extension_path() -> str:
    """The extension library for the present sources and openvino, built
    into the cache on first use."""
    cache_dir = extension_cache_dir()
    library = osp.join(cache_dir, LIBRARY_NAME)
    if osp.isfile(library):
        return library
    return build_openvino_extension(cache_dir)


def openvino_core_with_custom_op(core: Optional[ov.Core] = None) -> ov.Core:
    """``core`` (a new one when None) with the extension added: its ONNX
    reader turns ``mmdet_detr::MultiScaleDeformableAttention`` nodes into the
    operation that runs the compiled kernel."""
    core = core or ov.Core()
    core.add_extension(openvino_extension_path())
    return core


def openvino_compiled_model_with_custom_op(
        model: Union[str, onnx.ModelProto],
        register_custom_op: bool = True,
        device: str = 'CPU',
        core: Optional[ov.Core] = None) -> ov.CompiledModel:
    """``model`` (an ONNX path or ModelProto) read and compiled for
    ``device``.

    With ``register_custom_op`` the attention nodes run the compiled kernel.
    Without it, a model that holds them fails with an error that says so
    (OpenVINO's own lists every node it could not convert).
    """
    if register_custom_op:
        core = openvino_core_with_custom_op(core)
    core = core or ov.Core()
    try:
        if isinstance(model, onnx.ModelProto):
            ov_model = core.read_model(model.SerializeToString())
        else:
            ov_model = core.read_model(model)
    except Exception as error:  # OpenVINO's errors share no base class
        if register_custom_op or not attention_nodes(load_model(model)):
            raise
        raise RuntimeError(
            missing_op_message(
                model, 'OpenVINO',
                'open it with mmdet_detr.deploy.custom_op.'
                'openvino_compiled_model_with_custom_op(model) '
                '(register_custom_op=True), or add the extension with '
                'openvino_core_with_custom_op()') +
            f' OpenVINO said: {error}') from error
    return core.compile_model(ov_model, device)
