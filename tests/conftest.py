"""Fixtures the test modules share.

``deformable_detr_run``, ``detr_run`` and ``dino_run``: a tiny detector of
each kind trained for two iterations on generated shapes data (once a
pytest process, see ``tiny_checkpoint``); the tests using one run with its
folder, which holds ``data/shapes/``, as the working directory.
"""
from typing import Iterator

import pytest
from tiny_checkpoint import (TINY_CONFIG, TINY_DETR_CONFIG, TINY_DINO_CONFIG,
                             TinyRun, tiny_run)


def _in_run_folder(tmp_path_factory, config: str) -> Iterator[TinyRun]:
    run = tiny_run(tmp_path_factory, config)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(run.root)
        yield run


@pytest.fixture(scope='module')
def deformable_detr_run(tmp_path_factory) -> Iterator[TinyRun]:
    yield from _in_run_folder(tmp_path_factory, TINY_CONFIG)


@pytest.fixture(scope='module')
def detr_run(tmp_path_factory) -> Iterator[TinyRun]:
    yield from _in_run_folder(tmp_path_factory, TINY_DETR_CONFIG)


@pytest.fixture(scope='module')
def dino_run(tmp_path_factory) -> Iterator[TinyRun]:
    yield from _in_run_folder(tmp_path_factory, TINY_DINO_CONFIG)
