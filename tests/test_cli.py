"""common/cli.py: one command line for every stage (presets, --config, key=value, --help, errors)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common.cli import Command, settings_rows
from common.config import ConfigError

# Every stage entry point and benchmark that takes settings, by module.
MAINS = (
    "pipeline.run",
    "pipeline.contamination",
    "pipeline.bench",
    "tokenizer.train",
    "tokenizer.bench",
    "pretrain.train",
    "finetune.run",
    "report.build",
    "publish.hub",
    "bench.decontam",
    "bench.s3",
    "bench.scale",
    "bench.gpu_check",
    "bench.pretrain",
)


@dataclass
class Inner:
    depth: int = 3  # levels (a string under the field wins over this comment)
    """Levels below the top."""


@dataclass
class Settings:
    name: str = field(default="base", metadata={"help": "what it is called"})
    size: int = 1
    """How big."""
    ratio: float = 0.5  # a share
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


@pytest.fixture
def command(tmp_path) -> Command:
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "small.yaml").write_text("name: small\nsize: 2\nratio: 0.25\ninner: {depth: 4}\n")
    (presets / "big.yaml").write_text("inherit: small.yaml\nsize: 9\n")
    return Command(Settings, "python -m example", "Example stage.", presets=presets, default_preset="small")


def test_precedence_preset_then_file_then_overrides(command, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("size: 5\ninner: {depth: 6}\n")
    cfg, _ = command.read(["--preset", "big", "--config", str(config), "inner.depth=7", "tags=[a, b]"])
    assert (cfg.name, cfg.size, cfg.ratio, cfg.inner.depth, cfg.tags) == ("small", 5, 0.25, 7, ["a", "b"])
    cfg, _ = command.read(["--config", str(config), "size=8"])  # --config alone: no default preset
    assert (cfg.name, cfg.size, cfg.ratio, cfg.inner.depth) == ("base", 8, 0.5, 6)
    cfg, args = command.read(["ratio=1"])  # nothing given: the default preset, then the override
    assert args.preset == "small" and (cfg.size, cfg.ratio) == (2, 1.0)


def test_a_real_stage_layers_the_same_way(tmp_path):
    from finetune.run import COMMAND

    config = tmp_path / "ft.yaml"
    config.write_text("seeds: [7]\ntrain: {epochs: 2, lr: 1.0e-4}\n")
    cfg, _ = COMMAND.read(["--preset", "tiny", "--config", str(config), "train.epochs=4"])
    tiny, _ = COMMAND.read(["--preset", "tiny"])
    assert cfg.seeds == [7] and cfg.train.epochs == 4 and cfg.train.lr == 1e-4
    assert cfg.train.max_train_examples == tiny.train.max_train_examples == 400  # from the preset


def test_unknown_setting_names_it_and_lists_the_known_ones(command):
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) sise; known: inner, name, ratio, size, tags"):
        command.read(["sise=3"])
    with pytest.raises(ConfigError, match=r"inner: unknown setting\(s\) width; known: depth"):
        command.read(["inner.width=3"])


def test_bad_values_name_the_setting(command):
    with pytest.raises(ConfigError, match=r"size: expected int, got 'big'"):
        command.read(["size=big"])
    with pytest.raises(ConfigError, match=r"tags: expected a list"):
        command.read(["tags=7"])
    with pytest.raises(ConfigError, match=r"no such preset .*known: big, small"):
        command.read(["--preset", "huge"])
    with pytest.raises(ConfigError, match=r"must look like key=value|unknown argument"):
        command.read(["size"])
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['--fast'\]"):
        command.read(["--fast"])


def test_help_docs_come_from_metadata_strings_and_comments(command):
    rows = {name: (default, doc) for name, default, doc in settings_rows(Settings)}
    assert rows["name"] == ("base", "what it is called")
    assert rows["size"] == ("1", "How big.")
    assert rows["ratio"] == ("0.5", "a share")
    assert rows["tags"] == ("[]", "")
    assert rows["inner.depth"] == ("3", "Levels below the top.")
    text = command.help()
    words = " ".join(text.split())
    assert "--preset NAME preset in" in words and "presets/: big, small (small when neither" in words
    assert "with their defaults (preset small applied):" in text
    assert re.search(r"\n  size +How big\. \(default 2\)\n", text)  # the default preset's value


def test_setting_flags_and_passthrough():
    from pipeline.run import COMMAND as corpus
    from publish.hub import COMMAND as publish

    args = publish.parse(["--folder", "out/pretrain/x", "repo_id=a/b", "--dry-run"])
    assert args.overrides == ["repo_id=a/b", "folder=out/pretrain/x", "dry_run=true"]
    args = corpus.parse(["--runner=DirectRunner", "langs=[yor]", "--direct_num_workers", "1"])
    assert args.passthrough == ["--runner=DirectRunner", "--direct_num_workers", "1"]
    assert args.overrides == ["langs=[yor]"]


def test_bad_inputs_are_config_errors():
    from common.eval_readers import DataError
    from finetune.model import ModelFolderError
    from pipeline.catalog import CatalogError
    from publish.folder import PublishRefused
    from tokenizer.artifacts import TokenizerFolderError
    from tokenizer.sampling import EmptyLanguageError
    from tokenizer.spm_train import VocabularyTooLargeError

    for error in (
        DataError,
        ModelFolderError,
        CatalogError,
        PublishRefused,
        TokenizerFolderError,
        EmptyLanguageError,
        VocabularyTooLargeError,
    ):
        assert issubclass(error, ConfigError), error


@pytest.mark.parametrize("module", MAINS)
def test_help_lists_every_setting_with_its_default(module, capsys):
    stage = importlib.import_module(module)
    with pytest.raises(SystemExit) as exit_:
        stage.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {stage.COMMAND.prog} ") and "--config FILE" in out
    lines = {line.split()[0]: line for line in out.split("with their defaults")[1].splitlines()[1:] if line.strip()}
    for name, _, _ in settings_rows(stage.COMMAND.config):
        assert name in lines and "(default " in lines[name], name


@pytest.mark.parametrize("module", MAINS)
def test_a_bad_setting_is_one_error_line_and_exit_2(module, capsys):
    stage = importlib.import_module(module)
    assert stage.main(["no_such_setting=1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "no_such_setting" in captured.err and "Traceback" not in captured.err
    assert (
        stage.main(
            ["--no-such-flag"]
            if module not in ("pipeline.run", "pipeline.bench")
            else ["--config", str(Path("no/such/file.yaml"))]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("error: ")
