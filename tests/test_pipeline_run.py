"""The whole corpus stage end to end on a tiny realistic corpus."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import uri
from common.corpus import iter_texts, list_languages
from common.io import read_manifest
from pipeline.run import run
from pipeline.stats import AccountingError, build_stats
from pipeline.textkey import word_tokens
from tests.support import REPO_ROOT
from tests.support.pipeline import (  # noqa: F401  (fixture)
    NER_TEST,
    NEWS_HEADLINE,
    TWEET,
    YOSM_REVIEW,
    fake_sources,
    make_corpus,
    run_args,
)

# The stage reads the stand-in catalog and reader of tests/support/pipeline.py.
pytestmark = pytest.mark.usefixtures("fake_sources")

IN_PROCESS = "--runner=DirectRunner"  # single process: fast for tests; the default uses 2 workers


def records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(out.rglob("*.jsonl.gz")) for line in gzip.open(p, "rt", encoding="utf-8")]


def shard_bytes(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl.gz"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    data, catalog = make_corpus(root)
    out = root / "out"
    manifest = run(run_args(data, catalog, out, IN_PROCESS))
    return data, catalog, out, manifest


def test_every_line_read_is_kept_or_dropped_with_reason_row27(corpus):
    _, _, out, manifest = corpus
    stats = json.loads((out / "stats.json").read_text())
    kept_per_source: dict = {}
    for rec in records(out):
        kept_per_source[(rec["lang"], rec["source"])] = kept_per_source.get((rec["lang"], rec["source"]), 0) + 1
    for lang, entry in stats["languages"].items():
        for source, s in entry["sources"].items():
            assert s["read"] == s["kept"] + s["dropped"] == s["kept"] + sum(s["dropped_by_reason"].values())
            assert s["kept"] == kept_per_source.get((lang, source), 0) == s["train"] + s["valid"]
    yor = stats["languages"]["yor"]["sources"]["yor-src"]
    assert yor["read"] == 12 and yor["records"] == 12
    assert yor["dropped_by_reason"] == {
        "decontaminated": 3,
        "exact_dup": 1,
        "near_dup": 1,
        "pivot_language": 1,
        "too_short": 1,
    }
    amh = stats["languages"]["amh"]["sources"]["amh-src"]
    assert amh["dropped_by_reason"] == {"decode": 1, "wrong_script": 1}
    # every reason has its samples, with where the line came from
    for reason in ("decode", "exact_dup", "near_dup", "too_short", "wrong_script", "decontaminated"):
        rows = [json.loads(x) for x in (out / "rejected" / f"{reason}.jsonl").read_text().splitlines()]
        assert rows and all({"source", "path", "line_no", "text", "lang"} <= set(r) for r in rows)
    assert manifest["totals"]["kept"] == len(records(out))


def test_accounting_mismatch_fails_loudly_row27():
    counts = [
        (("read", "yor", "s"), (3, 30)),
        (("kept", "yor", "s", "train"), (1, 10)),
        (("dropped", "yor", "s", "too_short"), (1, 5)),
    ]
    with pytest.raises(AccountingError, match="yor/s: read 3 != kept 1 \\+ dropped 1"):
        build_stats(counts)


def test_planted_eval_sentences_dropped_and_counted_row28(corpus):
    _, _, out, _ = corpus
    stats = json.loads((out / "stats.json").read_text())
    assert stats["decontamination"]["yor-src"] == {"masakhaner1": 1, "afrisenti": 1, "yosm": 1}
    assert stats["decontamination"]["hau-src"] == {"masakhanews": 1}
    kept = " | ".join(" ".join(word_tokens(r["text"])) for r in records(out))
    for item in (NER_TEST, NEWS_HEADLINE, TWEET.replace("@user", ""), YOSM_REVIEW):
        assert " ".join(word_tokens(item)) not in kept


def test_outputs_layout_and_manifest(corpus):
    _, _, out, manifest = corpus
    assert list_languages(out) == ["amh", "hau", "yor"]
    texts = list(iter_texts(out, "yor"))
    assert "Ẹ kú àárọ̀, ṣé dáadáa ni gbogbo ẹbí yín wà?" in texts  # tone marks intact, NFC
    assert set(manifest["outputs"]) >= {"stats.json", "yor/train-00000.jsonl.gz"}
    assert len(manifest["corpus_hash"]) == 64 and manifest["inputs"]["catalog"]
    assert any(k.startswith("eval:") for k in manifest["inputs"])
    assert not list(out.glob(".staging-*"))
    ids = [r["id"] for r in records(out)]
    assert len(ids) == len(set(ids))


def test_rerun_skipped_then_changed_input_rerun_row26(tmp_path, capsys):
    data, catalog = make_corpus(tmp_path)
    out = tmp_path / "out"
    first = run(run_args(data, catalog, out, IN_PROCESS))
    assert run(run_args(data, catalog, out, IN_PROCESS)) is None
    assert "skipped" in capsys.readouterr().out
    new_line = "Àgbẹ̀ náà gbin iṣu àti àgbàdo sínú oko rẹ̀ ní ọdún yìí."
    with open(data / "src" / "yor.txt", "a", encoding="utf-8") as handle:
        handle.write(new_line + "\n")
    second = run(run_args(data, catalog, out, IN_PROCESS))
    assert second is not None and second["corpus_hash"] != first["corpus_hash"]
    assert new_line in [r["text"] for r in records(out)]
    assert second["totals"]["read"] == first["totals"]["read"] + 1


def test_publish_interrupted_then_rerun_is_complete_row25(tmp_path, monkeypatch):
    data, catalog = make_corpus(tmp_path)
    out = tmp_path / "out"
    run(run_args(data, catalog, out, IN_PROCESS))
    expected = sorted(r["text"] for r in records(out))
    (data / "src" / "hau.txt").write_text("Sabon layi a cikin fayil din nan yau da kullum.\n", encoding="utf-8")
    real_rename = uri.rename

    def failing_rename(sources, targets):
        real_rename(sources[:1], targets[:1])  # one file moved, then the "machine dies"
        raise OSError("simulated crash while publishing")

    monkeypatch.setattr(uri, "rename", failing_rename)
    with pytest.raises(OSError, match="simulated crash"):
        run(run_args(data, catalog, out, IN_PROCESS))
    monkeypatch.setattr(uri, "rename", real_rename)
    assert read_manifest(out) is None  # incomplete output is never marked complete
    manifest = run(run_args(data, catalog, out, IN_PROCESS))
    texts = [r["text"] for r in records(out)]
    assert len(texts) == len(set(texts)) == manifest["totals"]["kept"]
    assert "Sabon layi a cikin fayil din nan yau da kullum." in texts
    assert not any(t in texts for t in expected if t.startswith("Yaron"))
    assert not list(out.glob(".staging-*"))


def _subprocess_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_killed_while_writing_leaves_no_partial_shard_row25(tmp_path):
    """SIGKILL the real multi-process run once shards appear in staging; then rerun."""
    data, catalog = make_corpus(tmp_path)
    # enough text that writing takes a moment
    lines = [f"Gbólóhùn tuntun nọ́mbà {i} nípa ìlú Èkó àti Ìbàdàn ní ọjọ́ {i % 7}." for i in range(6000)]
    (data / "src" / "yor.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-c",
        "from tests.support.pipeline import main; main()",  # python -m pipeline.run
        *run_args(data, catalog, out, "num_shards=4", "minhash.enabled=false"),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=_subprocess_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if any(out.glob(".staging-*/*/*.jsonl.gz")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert read_manifest(out) is None
    assert not [p for p in out.rglob("*.jsonl.gz") if not p.relative_to(out).parts[0].startswith(".staging-")]
    manifest = run(run_args(data, catalog, out, IN_PROCESS, "num_shards=4", "minhash.enabled=false"))
    texts = [r["text"] for r in records(out)]
    assert len(texts) == len(set(texts)) == manifest["totals"]["kept"] > 5900
    assert not list(out.glob(".staging-*"))


def test_same_inputs_give_identical_shards_across_runners(tmp_path, corpus):
    """The default 2-process DirectRunner gives byte-identical shards to the in-process one."""
    data, catalog, out, manifest = corpus
    out2 = tmp_path / "out"
    second = run(run_args(data, catalog, out2))
    assert shard_bytes(out2) == shard_bytes(out)
    assert second["corpus_hash"] == manifest["corpus_hash"]


def test_cli_splits_settings_from_beam_flags():
    from pipeline.run import COMMAND

    args = COMMAND.parse(
        [
            "langs=[yor, hau]",
            "--runner=FlinkRunner",
            "--flink_master",
            "host:8081",
            "filter.min_words=5",
            "--config",
            "pipeline/configs/default.yaml",
        ]
    )
    assert args.overrides == ["langs=[yor, hau]", "filter.min_words=5"]
    assert args.passthrough == ["--runner=FlinkRunner", "--flink_master", "host:8081"]
    assert str(args.config) == "pipeline/configs/default.yaml" and args.preset is None
    assert COMMAND.parse(["langs=[yor]"]).preset == "default"  # pipeline/configs/default.yaml


def test_custom_task_dev_and_test_items_dropped_and_recorded(tmp_path):
    data, catalog = make_corpus(tmp_path)
    dev_item = "Ìwé tuntun yìí kọ́ wa ní ọ̀pọ̀lọpọ̀ nǹkan nípa ìtàn ìlú wa"
    test_item = "Orin àkọ́kọ́ inú àwo yìí ni mo fẹ́ràn jù lọ nínú gbogbo rẹ̀"
    for split, item in (("dev", dev_item), ("test", test_item)):
        (data / "mine" / "yor").mkdir(parents=True, exist_ok=True)
        (data / "mine" / "yor" / f"{split}.tsv").write_text(f"text\tlabel\n{item}\tpositive\n", encoding="utf-8")
    tasks_file = tmp_path / "my_sets.yaml"
    tasks_file.write_text(
        "my_reviews:\n  kind: classification\n  langs: [yor]\n"
        "  files: {train: 'mine/{lang}/dev.tsv', dev: 'mine/{lang}/dev.tsv', test: 'mine/{lang}/test.tsv'}\n"
        "  reader: {format: tsv}\n",
        encoding="utf-8",
    )
    source = data / "src" / "yor.txt"
    source.write_text(
        source.read_text(encoding="utf-8") + f"Ìròyìn: {dev_item.upper()}.\n{test_item} — bẹ́ẹ̀ ni wọ́n sọ\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    manifest = run(run_args(data, catalog, out, IN_PROCESS, f"tasks_file={tasks_file}"))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["decontamination"]["yor-src"]["my_reviews"] == 2
    record = manifest["decontaminated_against"]["my_reviews"]
    assert sorted(Path(p).name for p in record["files"]) == ["dev.tsv", "test.tsv"]
    assert set(manifest["decontaminated_against"]) >= {"masakhaner1", "afrisenti", "my_reviews"}
