"""Task loading: label checks, label mappings, zero-shot, the Hub offline, BYO tasks."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import pytest

from common.config import load_config
from common.eval_sets import ReaderSpec, TaskSpec
from finetune.config import FinetuneConfig
from finetune.data import DataError, load_task, ner_label_list
from finetune.run import plan_runs, task_registry


def conll(path: Path, sentences) -> str:
    path.write_text("\n\n".join("\n".join(f"{w} {l}" for w, l in s) for s in sentences) + "\n", encoding="utf-8")
    return str(path)


def ner_task(tmp_path, dev_sentences, **reader) -> TaskSpec:
    train = [
        [("Adébáyọ̀", "B-PER"), ("lọ", "O"), ("sí", "O"), ("Ìbàdàn", "O")],
        [("Musa", "B-PER"), ("Bello", "I-PER"), ("ya", "O")],
    ]
    files = {
        "train": conll(tmp_path / "train.txt", train),
        "dev": conll(tmp_path / "dev.txt", dev_sentences),
        "test": conll(tmp_path / "test.txt", train),
    }
    return TaskSpec(name="myner", kind="ner", langs=["yor"], files=files, reader=ReaderSpec(format="conll", **reader))


def test_ner_label_list_completes_bio_pairs():
    assert ner_label_list({"O", "B-PER", "I-LOC"}) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_unknown_dev_label_is_named_row30(tmp_path):
    dev = [[("Ọmọ", "O")], [("ní", "O"), ("Ẹ̀kọ́", "B-LOC")]]
    task = ner_task(tmp_path, dev)
    with pytest.raises(DataError, match=r"dev\.txt:3: label\(s\) \['B-LOC'\] not in the train label set"):
        load_task(task, "yor", tmp_path)


def test_label_map_renames_with_warning_row30(tmp_path, caplog):
    dev = [[("Ọmọ", "O")], [("ní", "O"), ("Ẹ̀kọ́", "B-LOC")]]
    task = ner_task(tmp_path, dev, label_map={"B-LOC": "O"})
    with caplog.at_level(logging.WARNING, logger="finetune"):
        data = load_task(task, "yor", tmp_path)
    assert data.labels == ["O", "B-PER", "I-PER"]
    assert data.splits["dev"].counts["label_B-LOC_to_O"] == 1
    assert list(data.splits["dev"].dataset["labels"]) == [["O"], ["O", "O"]]
    assert any("label_B-LOC_to_O" in r.getMessage() for r in caplog.records)


def _cls_task(tmp_path, test_rows, labels=()):
    def tsv(name, rows):
        (tmp_path / name).write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
        return str(tmp_path / name)

    train = [("Ó dára púpọ̀ 🙂", "positive"), ("Kò dára rárá", "negative")] * 3
    return TaskSpec(
        name="mysent",
        kind="classification",
        langs=["yor"],
        labels=list(labels),
        files={"train": tsv("train.tsv", train), "dev": tsv("dev.tsv", train), "test": tsv("test.tsv", test_rows)},
        reader=ReaderSpec(format="tsv", quoting="none"),
    )


def test_unknown_test_label_row30_31(tmp_path):
    task = _cls_task(tmp_path, [("Ó dára", "positive"), ("Ìwé yìí", "neutral"), ("Kò dára", "negative")])
    with pytest.raises(DataError, match=r"test\.tsv:3: label 'neutral' is not in the label set"):
        load_task(task, "yor", tmp_path)
    data = load_task(task, "yor", tmp_path, skip_bad_rows=True)
    assert data.splits["test"].counts["skipped_unknown_label"] == 1
    assert list(data.splits["test"].dataset["label"]) == ["positive", "negative"]


def test_fixed_label_set_checks_train_too_row31(tmp_path):
    task = _cls_task(tmp_path, [("Ó dára", "positive")], labels=["negative", "neutral"])
    with pytest.raises(DataError, match=r"train\.tsv:2: label 'positive' is not in the label set"):
        load_task(task, "yor", tmp_path)


def builtin(name: str) -> TaskSpec:
    return task_registry(FinetuneConfig(model="x"))[name]


def test_ood_mapping_drops_neutral_tweets(data_dir):
    data = load_task(builtin("afrisenti_yosm"), "yor", data_dir)
    with open(data_dir / "eval/afrisenti/COUNTS.tsv", encoding="utf-8") as handle:
        counts = {(r["lang"], r["split"]): r for r in csv.DictReader(handle, delimiter="\t")}
    neutral = dict(kv.split(":") for kv in counts[("yor", "train")]["label_counts"].split("|"))["neutral"]
    assert data.labels == ["negative", "positive"]
    assert data.splits["train"].counts["label_neutral_dropped"] == int(neutral)
    assert len(data.splits["train"].dataset) == int(counts[("yor", "train")]["rows"]) - int(neutral)
    assert set(data.splits["test"].dataset["label"]) == {"negative", "positive"}
    assert data.splits["test"].sources[0].endswith("yosm/test.tsv")


def test_zero_shot_language_trains_on_its_source(data_dir):
    data = load_task(builtin("afrisenti"), "tir", data_dir, caps={"train": 50})
    assert data.setting == "zero-shot from amh"
    assert data.splits["train"].sources[0].endswith("afrisenti/amh/train.tsv")
    assert len(data.splits["train"].dataset) == 50
    assert data.splits["dev"].sources[0].endswith("afrisenti/tir/dev.tsv")


def test_hedderich_labels_lowercased_and_masakhanews_labels_file(data_dir):
    hau = load_task(builtin("hedderich"), "hau", data_dir)
    assert hau.labels == ["africa", "health", "nigeria", "politics", "world"]
    news = load_task(builtin("masakhanews"), "yor", data_dir)
    labels_txt = (data_dir / "eval/masakhanews/yor/labels.txt").read_text().split()
    assert news.labels == labels_txt


def test_hub_dataset_offline_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = TaskSpec(
        name="hubner",
        kind="ner",
        langs=["hau"],
        reader=ReaderSpec(
            hub_id="masakhane/masakhaner2-no-such-copy",
            hub_config="hau",
            text_columns=["tokens"],
            label_column="ner_tags",
        ),
    )
    started = time.monotonic()
    with pytest.raises(
        DataError,
        match=r"hub_id 'masakhane/masakhaner2-no-such-copy'.*"
        r"cannot be loaded \(offline",
    ):
        load_task(task, "hau", tmp_path)
    assert time.monotonic() - started < 60  # no hanging on retries


def test_byo_tasks_from_a_config_file(tmp_path):
    """A user CSV and a JSONL set, declared in YAML only: no code change."""
    (tmp_path / "tr.csv").write_text('body,topic\n"Ìròyìn, ọjà",economy\nBọ́ọ̀lù,sport\nልጁ,sport\n', encoding="utf-8")
    (tmp_path / "te.jsonl").write_text('{"body": "Ọjà", "topic": "economy"}\n', encoding="utf-8")
    cfg_file = tmp_path / "my.yaml"
    cfg_file.write_text(
        f"""
tasks: [mytopics]
langs: []
custom_tasks:
  - name: mytopics
    kind: classification
    langs: [yor]
    files: {{train: "{tmp_path}/tr.csv", dev: "{tmp_path}/tr.csv", test: "{tmp_path}/te.jsonl"}}
    reader: {{text_columns: [body], label_column: topic}}
""",
        encoding="utf-8",
    )
    cfg = load_config(FinetuneConfig, cfg_file, ["model=m"])
    [(task, lang)] = plan_runs(cfg, task_registry(cfg))
    data = load_task(task, lang, tmp_path)
    assert data.labels == ["economy", "sport"]
    assert list(data.splits["train"].dataset["text"]) == ["Ìròyìn, ọjà", "Bọ́ọ̀lù", "ልጁ"]
    assert list(data.splits["test"].dataset["label"]) == ["economy"]
