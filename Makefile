# mmdet_detr on a CPU-only Linux machine with Python 3.11.
#
#   make setup   create .venv/ and install everything into it (first run only)
#   make test    run the test suite
#   make demo    make the shapes data set, train, evaluate and draw pictures
#   make lint    flake8 and isort checks
#
# Variables (make test TORCH="torch==2.4.1", ...):
#   PYTHON           interpreter that creates .venv/   (python3.11)
#   TORCH            pip requirement for torch         (torch==2.13.0)
#                    Pin it: an unpinned torch fetches a multi-GB CUDA build.
#                    On a machine without a local CPU wheel, a CPU build comes
#                    from PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
#                    with TORCH="torch==2.13.0+cpu".
#   MMCV_FIND_LINKS  folder with a prebuilt mmcv wheel (none)
#                    Used when it imports beside the installed torch; else
#                    tools/install_mmcv.sh builds one (about 12 minutes, once:
#                    it is cached under ~/.cache/mmdet_detr/wheels/).
#   PYTEST_ARGS      arguments for pytest              (-q)
#   DEMO_WORK_DIR    where the demo trains, evaluates  (work_dirs/demo)
#
# Installation steps leave stamp files in .venv/, so a later run redoes only
# the steps whose inputs changed and reaches the tests in seconds.

PYTHON ?= python3.11
TORCH ?= torch==2.13.0
MMCV_FIND_LINKS ?=
PYTEST_ARGS ?= -q
DEMO_CONFIG ?= configs/demo/deformable_detr_shapes.py
DEMO_WORK_DIR ?= work_dirs/demo
# The demo config reads its data from here.
DEMO_DATA := data/shapes

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# One stamp name per TORCH value, so that changing TORCH reinstalls torch and
# then mmcv, whose ops are compiled against it.
TORCH_STAMP := $(VENV)/.stamp-torch-$(shell printf '%s' '$(TORCH)' | tr -c 'A-Za-z0-9.' '_')
EXT_SOURCES := $(wildcard mmdet_detr/ops/csrc/*.cpp mmdet_detr/ops/csrc/*.h)

.DEFAULT_GOAL := help
.PHONY: help setup test demo demo-data demo-train lint

help:
	@sed -n '3,6p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# *//'

setup: $(VENV)/.stamp-package $(VENV)/.stamp-reference $(VENV)/.stamp-deploy

test: setup
	@$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests under tests/"; rc=0; fi; \
	exit $$rc

# --- installation, in this order -------------------------------------------

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found;" \
		"install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch pulls setuptools>=77, which lacks pkg_resources: mmcv's build and
# mmengine.utils.is_installed import it, so setuptools<70 replaces it. torch
# declares setuptools>=77 but runs and builds extensions with 69, hence
# --no-warn-conflicts.
$(TORCH_STAMP): | $(PY)
	$(PIP) install -q '$(TORCH)'
	$(PIP) install -q --no-warn-conflicts 'setuptools<70' wheel
	rm -f $(VENV)/.stamp-torch-*
	touch $@

$(VENV)/.stamp-requirements: requirements.txt requirements/tests.txt | $(TORCH_STAMP)
	$(PIP) install -q -r requirements.txt -r requirements/tests.txt
	touch $@

$(VENV)/.stamp-mmcv: tools/install_mmcv.sh $(TORCH_STAMP) | $(VENV)/.stamp-requirements
	bash tools/install_mmcv.sh $(PY) '$(MMCV_FIND_LINKS)'
	touch $@

# --no-deps: requirements.txt is installed above, and resolving torch's own
# requirements again would bring setuptools>=77 back. --no-build-isolation:
# the C++ extension (built when mmdet_detr/ops/csrc/*.cpp exist) compiles
# against the torch installed here.
$(VENV)/.stamp-package: setup.py setup.cfg pyproject.toml $(EXT_SOURCES) \
		$(VENV)/.stamp-requirements $(VENV)/.stamp-mmcv
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) tools/check_env.py
	touch $@

# The `deploy` extra (requirements/deploy.txt): ONNX export and the
# onnxruntime and OpenVINO backends, which the tests run too.
$(VENV)/.stamp-deploy: requirements/deploy.txt | $(VENV)/.stamp-requirements
	$(PIP) install -q -r requirements/deploy.txt
	touch $@

# Code the tests compare against that cannot be installed into .venv (see
# requirements/reference.txt): unpacked into .venv/reference/, off sys.path.
# --no-deps: the torch that torchvision pins is the one in .venv; resolving
# it again would put a second torch (on most machines a CUDA build) into
# the folder.
$(VENV)/.stamp-reference: requirements/reference.txt | $(PY)
	rm -rf $(VENV)/reference
	$(PIP) install -q --no-deps --target $(VENV)/reference \
		-r requirements/reference.txt
	touch $@

$(VENV)/.stamp-lint: requirements/lint.txt | $(PY)
	$(PIP) install -q -r requirements/lint.txt
	touch $@

# --- demo ------------------------------------------------------------------

demo-data: setup
	@if [ -f $(DEMO_DATA)/annotations/instances_val.json ]; then \
		echo "Demo data: using $(DEMO_DATA)/ as it is."; \
	else \
		$(PY) tools/make_shapes_dataset.py $(DEMO_DATA); \
	fi

# A work dir with checkpoints is never trained over: the demo evaluates it.
demo-train: demo-data
	@if [ -f $(DEMO_WORK_DIR)/last_checkpoint ]; then \
		echo "$(DEMO_WORK_DIR) already holds a trained run (last checkpoint:" \
			"$$(cat $(DEMO_WORK_DIR)/last_checkpoint)); evaluating it again" \
			"instead of training. To train anew, move that folder away or" \
			"pass DEMO_WORK_DIR=work_dirs/another_name."; \
	else \
		$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR); \
	fi

# mmengine writes the path of the newest checkpoint to last_checkpoint; when
# the folder has moved since, the checkpoint is looked up beside that file.
# The pictures go to $(DEMO_WORK_DIR)/pictures/ and are redrawn on each run.
DEMO_IMAGE := $(DEMO_DATA)/val/000021.jpg

demo: demo-train
	@ckpt=$$(cat $(DEMO_WORK_DIR)/last_checkpoint); \
	[ -f "$$ckpt" ] || ckpt=$(DEMO_WORK_DIR)/$$(basename "$$ckpt"); \
	echo "Evaluating $$ckpt"; \
	$(PY) tools/test.py $(DEMO_CONFIG) "$$ckpt" --work-dir $(DEMO_WORK_DIR) \
		--show-dir vis || exit $$?; \
	vis=$$(ls -td $(DEMO_WORK_DIR)/*/vis 2>/dev/null | head -n 1); \
	pics=$(DEMO_WORK_DIR)/pictures; \
	$(PY) tools/infer.py $(DEMO_CONFIG) "$$ckpt" $(DEMO_IMAGE) \
		--out-dir $$pics --overwrite >/dev/null || exit $$?; \
	$(PY) tools/visualize_sampling.py $(DEMO_CONFIG) "$$ckpt" $(DEMO_IMAGE) \
		--out $$pics/sampling_points.png --overwrite >/dev/null || exit $$?; \
	$(PY) tools/visualize_queries.py $(DEMO_CONFIG) "$$ckpt" \
		--out $$pics/query_centres.png --overwrite || exit $$?; \
	[ -z "$$vis" ] || echo "Detections drawn on the val images: $$vis/"; \
	echo "Detections drawn on one image:  $$pics/$$(basename $(DEMO_IMAGE) .jpg).png"; \
	echo "Attention sampling points:      $$pics/sampling_points.png"; \
	echo "Box centres of each query:      $$pics/query_centres.png"

# --- style -------------------------------------------------------------------

LINT_PATHS := $(wildcard setup.py mmdet_detr tools tests configs)

lint: $(VENV)/.stamp-lint
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
