"""common/: typed config loading and atomic, manifest-checked writes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from common.config import ConfigError, config_to_dict, load_config
from common.io import atomic_write, manifest_is_current, write_jsonl_gz, read_jsonl, write_manifest


@dataclasses.dataclass
class Inner:
    lr: float = 1e-3
    langs: list[str] = dataclasses.field(default_factory=lambda: ["hau"])


@dataclasses.dataclass
class Outer:
    name: str = "run"
    steps: int = 10
    out_dir: Path = Path("out")
    train: Inner = dataclasses.field(default_factory=Inner)


def test_yaml_inherit_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 20\ntrain:\n  lr: 0.5\n")
    (tmp_path / "child.yaml").write_text("inherit: base.yaml\nname: child\n")
    cfg = load_config(Outer, tmp_path / "child.yaml", ["train.langs=[yor, ibo]", "steps=7"])
    assert cfg.name == "child" and cfg.steps == 7
    assert cfg.train.lr == 0.5 and cfg.train.langs == ["yor", "ibo"]
    assert config_to_dict(cfg)["out_dir"] == "out"


@pytest.mark.parametrize(
    "override, needle",
    [("stpes=3", "stpes"), ("steps=many", "steps"), ("train.lr=[1]", "train.lr"), ("nokey", "key=value")],
)
def test_bad_settings_are_named(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(Outer, None, [override])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_manifest_detects_changed_config_input_or_output(tmp_path):
    shard = tmp_path / "a.jsonl.gz"
    assert write_jsonl_gz(shard, [{"text": "Ẹ kú àárọ̀"}]) == 1
    assert list(read_jsonl(shard)) == [{"text": "Ẹ kú àárọ̀"}]
    write_manifest(tmp_path, "test", {"k": 1}, {"in": "h1"}, [shard])
    assert list(json.loads((tmp_path / "manifest.json").read_text())["outputs"]) == ["a.jsonl.gz"]
    assert manifest_is_current(tmp_path, {"k": 1}, {"in": "h1"})
    assert not manifest_is_current(tmp_path, {"k": 2}, {"in": "h1"})
    assert not manifest_is_current(tmp_path, {"k": 1}, {"in": "h2"})
    shard.write_bytes(b"corrupted")
    assert not manifest_is_current(tmp_path, {"k": 1}, {"in": "h1"})


def test_atomic_write_makes_files_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "shared.txt"
        with atomic_write(target) as handle:
            handle.write("ok")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
