"""Shared test set-up: offline Hugging Face, the real data folder, the fuzzing profile.
Helpers the tests import live in tests/support/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import shared_data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "mono" / "SOURCES.tsv").exists():
        pytest.skip(f"real data not found at {path} (set AFRO_DATA_DIR)")
    return path


# ---------------------------------------------------------------- fuzzing
# `HYPOTHESIS_PROFILE=fuzz` (make fuzz): random, 12,000 examples for each of the property
# tests in tests/test_fuzz.py (>= 100,000 in total). Without it, test_fuzz.py runs a few
# dozen derandomized examples a test and other tests keep their own settings.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "fuzz",
    max_examples=12_000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def pytest_terminal_summary(terminalreporter):
    """After test_fuzz.py: how many examples each property ran, and the failures."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz") or sys.modules.get("test_fuzz")
    if fuzz is None or not getattr(fuzz, "EXAMPLES", None):
        return
    failed = len(terminalreporter.stats.get("failed", []))
    write = terminalreporter.write_line
    write(
        f"fuzz: {sum(fuzz.EXAMPLES.values()):,} examples in total "
        f"(profile {os.environ.get('HYPOTHESIS_PROFILE', 'default')}), {failed} failed tests"
    )
    for name, n in sorted(fuzz.EXAMPLES.items()):
        write(f"fuzz:   {name:32} {n:>9,}")
