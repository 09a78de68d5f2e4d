"""Fixtures shared by the publish tests: one tiny run built once, copied fresh into each test."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from publish.testing import build_tiny_run

RUN = "tiny-loss"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One tiny run (model, tokenizer, results, report)."""
    root = tmp_path_factory.mktemp("pristine")
    build_tiny_run(root, RUN)
    return root


@pytest.fixture
def out(pristine, tmp_path) -> Path:
    root = tmp_path / "out"
    shutil.copytree(pristine, root)
    return root
