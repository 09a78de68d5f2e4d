"""Finetuning warns when the model's pretraining corpus was not cleaned against a set it scores."""

from __future__ import annotations

import json
import logging

import yaml

from common.eval_sets import task_registry
from common.io import sha256_file, write_manifest
from finetune.config import FinetuneConfig
from finetune.provenance import cleaning_record, uncleaned
from finetune.run import warn_uncleaned
from tests.support.pipeline import make_eval_dir


def _pretrained_model(tmp_path, cleaned: dict, corpus_hash="c1"):
    """A run folder as pretraining leaves it: run.json, config.yaml, final/; and its corpus."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_manifest(corpus, "corpus", {}, {}, extra={"corpus_hash": "c1", "decontaminated_against": cleaned})
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"settings": {}, "inputs": {"corpus_hash": corpus_hash}}))
    (run / "config.yaml").write_text(yaml.safe_dump({"corpus_dir": str(corpus)}))
    return run / "final"


def test_warns_for_a_set_the_corpus_was_not_cleaned_against(tmp_path, caplog):
    data = make_eval_dir(tmp_path).parent
    test_file = data / "eval/masakhaner1/yor/test.txt"
    dev_file = data / "eval/masakhaner1/yor/dev.txt"
    cleaned = {"masakhaner1": {"files": {str(test_file): sha256_file(test_file), str(dev_file): sha256_file(dev_file)}}}
    model = _pretrained_model(tmp_path, cleaned)
    record, where = cleaning_record(model)
    assert record == cleaned and where.endswith("corpus")
    registry = task_registry()
    assert uncleaned(record, registry["masakhaner1"], "yor", data) == []
    assert uncleaned(record, registry["yosm"], "yor", data) == [
        str(data / "eval/yosm/dev.tsv"),
        str(data / "eval/yosm/test.tsv"),
    ]
    test_file.write_text(test_file.read_text() + "\nỌ̀rọ̀ O\n")  # the test set changed since
    assert uncleaned(record, registry["masakhaner1"], "yor", data) == [str(test_file)]
    cfg = FinetuneConfig(model=str(model), data_dir=data)
    with caplog.at_level(logging.WARNING, logger="finetune"):
        warn_uncleaned(cfg, [(registry["yosm"], "yor")], [str(model)])
    assert "was not cleaned against yosm yor" in caplog.text


def test_a_changed_or_foreign_corpus_is_unknown(tmp_path):
    model = _pretrained_model(tmp_path, {}, corpus_hash="other")
    assert cleaning_record(model) == (None, f"{tmp_path / 'corpus'} has changed since the model was pretrained on it")
    foreign = tmp_path / "downloaded"
    foreign.mkdir()
    assert cleaning_record(foreign)[0] is None
