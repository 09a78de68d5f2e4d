"""Presets, overrides and the errors a user sees for bad settings."""

from __future__ import annotations

import re

import pytest

from common.config import load_config
from finetune.config import FinetuneConfig
from finetune.run import COMMAND, PRESETS, main, plan_runs, task_registry


def test_tiny_is_the_default_preset_and_make_overrides_apply():
    cfg, args = COMMAND.read(["model=m", "tasks=[masakhaner1,yosm]", "langs=[hau]", "seeds=[4,5]", "train.lr=3e-5"])
    assert args.preset == "tiny" and args.config is None
    assert cfg.train.lr == 3e-5 and cfg.seeds == [4, 5] and cfg.train.max_train_examples == 400
    names = [(t.name, lang) for t, lang in plan_runs(cfg, task_registry(cfg))]
    assert names == [("masakhaner1", "hau")]  # yosm has no Hausa


def test_default_task_list_is_the_issue_preset():
    cfg = load_config(FinetuneConfig, PRESETS / "tiny.yaml", ["model=m"])
    names = [(t.name, lang) for t, lang in plan_runs(cfg, task_registry(cfg))]
    assert names == [
        ("masakhaner1", "hau"),
        ("masakhaner1", "yor"),
        ("hedderich", "hau"),
        ("hedderich", "yor"),
        ("yosm", "yor"),
    ]
    assert len(cfg.seeds) == 3
    full = load_config(FinetuneConfig, PRESETS / "default.yaml", ["model=m"])
    assert full.train.max_train_examples == 0 and full.train.epochs >= 5


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=2", r"train\.lr must be in \(0, 1\)"),
        ("tasks=[masakhaner3]", r"unknown task\(s\) \['masakhaner3'\]"),
        ("train.epochs=0", r"train\.epochs must be >= 1"),
        ("seeds=[1,1]", r"seeds has duplicates"),
        ("trian.lr=0.1", r"unknown setting\(s\) trian"),
    ],
)
def test_bad_settings_are_named(override, message, capsys):
    assert main(["model=m", override]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_help_lists_settings(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "train.max_train_examples" in text and "afrisenti_yosm" in text and "skip_bad_rows" in text


def test_default_preset_runs_every_language_of_the_paper_tasks():
    cfg = load_config(FinetuneConfig, PRESETS / "default.yaml", ["model=m"])
    plan = plan_runs(cfg, task_registry(cfg))
    assert sum(t.name == "masakhaner1" for t, _ in plan) == 10
    assert sum(t.name == "masakhaner2" for t, _ in plan) == 20
    assert ("afrisenti_yosm", "yor") in [(t.name, lang) for t, lang in plan]
