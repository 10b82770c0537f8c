#!/usr/bin/env bash
# Install mmcv 2.1.0 with its compiled ops into the environment of PYTHON.
#
#   tools/install_mmcv.sh PYTHON [FIND_LINKS_DIR]
#
# mmcv's ops are C++ compiled against one torch, so a wheel works only beside
# the torch it was built with. In order, the first wheel that passes the check
# (`import mmcv.ops` and one nms call) stays installed:
#   1. FIND_LINKS_DIR/mmcv-2.1.0-<python tag>-*.whl, when given (a copy of
#      it goes to the cache below when it works);
#   2. a wheel built earlier by this script for the same torch and python, in
#      ${XDG_CACHE_HOME:-~/.cache}/mmdet_detr/wheels/torch-<version>-<tag>/;
#   3. a wheel built now from the PyPI source distribution into that cache
#      (about 12 minutes on 2 cores; MAX_JOBS compile jobs, default 2).
# torch must already be installed in PYTHON's environment.
set -euo pipefail

MMCV_VERSION=2.1.0

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 PYTHON [FIND_LINKS_DIR]" >&2
    exit 2
fi
PYTHON=$1
FIND_LINKS=${2:-}
PIP=("$PYTHON" -m pip)

say() { echo "[install_mmcv] $*"; }

torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)') || {
    echo "[install_mmcv] error: \`$PYTHON -c 'import torch'\` failed;" \
         "install torch first (make setup does)." >&2
    exit 1
}
py_tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/mmdet_detr/wheels/torch-${torch_version}-${py_tag}"

# True when the installed mmcv is MMCV_VERSION and its compiled ops run.
mmcv_works() {
    "$PYTHON" - "$MMCV_VERSION" <<'EOF'
import sys

import torch

import mmcv
from mmcv.ops import nms

assert mmcv.__version__ == sys.argv[1], f'mmcv {mmcv.__version__} installed'
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
assert keep.tolist() == [0], keep
EOF
}

# Install wheel $1; leave it installed and return 0 only when it works.
try_wheel() {
    local wheel=$1
    say "trying $wheel"
    "${PIP[@]}" uninstall -q -y mmcv >/dev/null 2>&1 || true
    if "${PIP[@]}" install -q "$wheel" && mmcv_works; then
        say "mmcv $MMCV_VERSION with ops installed from $wheel"
        return 0
    fi
    say "$wheel does not work beside torch $torch_version ($py_tag); uninstalling it"
    "${PIP[@]}" uninstall -q -y mmcv >/dev/null 2>&1 || true
    return 1
}

# Newest wheel of mmcv MMCV_VERSION for this python in directory $1, if any.
find_wheel() {
    ls -t "$1"/mmcv-"$MMCV_VERSION"-"$py_tag"-*.whl 2>/dev/null | head -n 1 || true
}

if [ -n "$FIND_LINKS" ]; then
    wheel=$(find_wheel "$FIND_LINKS")
    if [ -n "$wheel" ] && try_wheel "$wheel"; then
        # Keep a copy, so a later set-up without FIND_LINKS skips the build.
        { mkdir -p "$cache_dir" && cp "$wheel" "$cache_dir"/; } ||
            say "could not copy $wheel to $cache_dir"
        exit 0
    fi
    [ -n "$wheel" ] || say "no mmcv-$MMCV_VERSION-$py_tag wheel in $FIND_LINKS"
fi

wheel=$(find_wheel "$cache_dir")
if [ -n "$wheel" ]; then
    if try_wheel "$wheel"; then
        exit 0
    fi
    say "removing the broken cached wheel $wheel"
    rm -f "$wheel"
fi

if ! command -v "${CXX:-g++}" >/dev/null 2>&1; then
    echo "[install_mmcv] error: building mmcv needs a C++ compiler and" \
         "${CXX:-g++} is not on PATH (Debian/Ubuntu: apt-get install g++)." >&2
    exit 1
fi

say "building mmcv $MMCV_VERSION with ops from source against torch" \
    "$torch_version: this takes about 12 minutes on 2 cores. The wheel is" \
    "cached in $cache_dir, so later set-ups take seconds."
# mmcv's setup.py imports torch and pkg_resources (gone from setuptools>=70),
# so it builds without isolation, with setuptools<70 and wheel beside torch.
# ninja lets MAX_JOBS compile in parallel; its pip package puts it in the
# environment's bin/, hence the PATH.
"${PIP[@]}" install -q 'setuptools<70' wheel ninja
build_dir=$(mktemp -d)
trap 'rm -rf "$build_dir"' EXIT
PATH="$(cd "$(dirname "$PYTHON")" && pwd):$PATH" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" \
    "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv \
    --wheel-dir "$build_dir" "mmcv==$MMCV_VERSION"
mkdir -p "$cache_dir"
# Move the finished wheel in only now, so an interrupted build leaves no
# partial wheel in the cache.
mv "$build_dir"/mmcv-"$MMCV_VERSION"-*.whl "$cache_dir"/
wheel=$(find_wheel "$cache_dir")
if [ -z "$wheel" ] || ! try_wheel "$wheel"; then
    echo "[install_mmcv] error: the mmcv wheel built in $cache_dir fails" \
         "\`import mmcv.ops\` beside torch $torch_version." >&2
    exit 1
fi
