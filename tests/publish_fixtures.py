"""Fixtures shared by the publish tests: tiny runs built once per module, copied fresh into each test."""
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


@pytest.fixture(scope="module")
def trained_pristine(tmp_path_factory) -> Path:
    """One tiny run whose model was trained on the tiny texts, which are also its corpus
    (validation split included): a model that guesses words."""
    root = tmp_path_factory.mktemp("trained")
    build_tiny_run(root, RUN, trained=True)
    return root


@pytest.fixture
def trained_out(trained_pristine, tmp_path) -> Path:
    root = tmp_path / "out"
    shutil.copytree(trained_pristine, root)
    return root
