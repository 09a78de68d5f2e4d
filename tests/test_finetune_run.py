"""End to end on a tiny model: results table, seeds, reuse, skip, best-dev selection."""

from __future__ import annotations

import csv
import gzip
import json
import statistics

import pytest
import torch

import finetune.train as train_module
from common.config import load_config
from finetune.config import FinetuneConfig, TrainConfig
from finetune.data import load_task
from finetune.model import check_model_folder
from finetune.run import main, task_registry
from finetune.train import Encoded, finetune_once
from tests.support.finetune import NER_SENTS, build_tiny_model, write_user_config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "final")


@pytest.fixture()
def user_config(tmp_path):
    return write_user_config(tmp_path, ["myner", "mysent"], [1, 2])


def read_csv(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_results_table_seeds_reuse_and_skip(tiny_model, user_config, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--config", str(user_config), f"model={tiny_model}", f"out_dir={out}"]
    assert main(args) == 0
    rows = read_csv(out / "results.csv")
    assert sorted((r["task"], r["lang"], r["seed"]) for r in rows) == [
        ("myner", "mul", "1"),
        ("myner", "mul", "2"),
        ("mysent", "yor", "1"),
        ("mysent", "yor", "2"),
    ]
    assert {r["model"] for r in rows} == {f"{tiny_model.parent.name}/final"}
    summary = {(r["task"], r["lang"]): r for r in read_csv(out / "summary.csv")}
    for task in ("myner", "mysent"):
        scores = [float(r["test_score"]) for r in rows if r["task"] == task]
        lang = "mul" if task == "myner" else "yor"
        assert float(summary[(task, lang)]["test_mean"]) == pytest.approx(statistics.fmean(scores), abs=0.006)
        assert float(summary[(task, lang)]["test_std"]) == pytest.approx(statistics.stdev(scores), abs=0.006)
    assert "± " in (out / "results.md").read_text(encoding="utf-8")
    result = json.loads(
        (out / "runs" / f"{tiny_model.parent.name}--final" / "myner" / "mul" / "seed1" / "result.json").read_text()
    )
    assert result["data_counts"]["train"]["docstart_lines"] == 1
    assert result["row"]["best_epoch"] == 1 + result["dev_by_epoch"].index(max(result["dev_by_epoch"]))
    with gzip.open(
        out / "runs" / f"{tiny_model.parent.name}--final" / "myner" / "mul" / "seed1" / "test_predictions.jsonl.gz",
        "rt",
        encoding="utf-8",
    ) as handle:
        preds = [json.loads(line) for line in handle]
    assert len(preds) == len(NER_SENTS) * 3
    assert all(len(p["pred"]) == len(p["words"]) == len(p["gold"]) for p in preds)
    assert (out / "manifest.json").exists() and (out / "config.yaml").exists()
    capsys.readouterr()

    assert main(args) == 0  # unchanged: skipped as a whole
    assert "skipped" in capsys.readouterr().out

    assert main(args + ["seeds=[1,2,3]"]) == 0  # one new seed: only it is trained
    log = capsys.readouterr().out
    assert log.count("reusing") == 4 and log.count("seed 3: test") == 2
    assert len(read_csv(out / "results.csv")) == 6


def _data_and_model(tiny_model, tmp_path, user_config):
    cfg = load_config(FinetuneConfig, user_config, [f"model={tiny_model}"])
    task = task_registry(cfg)["mysent"]
    data = load_task(task, "yor", tmp_path)
    train = TrainConfig(epochs=3, batch_size=4, max_length=16, lr=1e-3, threads=1)
    checked = check_model_folder(tiny_model, train.max_length)
    encoded = {s: Encoded(data, s, checked, train) for s in data.splits}
    return data, checked, encoded, train


def test_same_seed_same_result(tiny_model, tmp_path, user_config):
    data, checked, encoded, train = _data_and_model(tiny_model, tmp_path, user_config)
    a = finetune_once(checked, data, encoded, train, seed=5)
    b = finetune_once(checked, data, encoded, train, seed=5)
    assert a.dev_scores == b.dev_scores and a.test_predictions == b.test_predictions


def test_test_uses_best_dev_epoch_not_last(tiny_model, tmp_path, user_config, monkeypatch):
    """Dev scores 0.2, 0.9, 0.5: the test must be scored with epoch 2's weights."""
    data, checked, encoded, train = _data_and_model(tiny_model, tmp_path, user_config)
    scripted = iter([0.2, 0.9, 0.5])
    snapshots, seen_at_test = [], []
    real = train_module.evaluate_split

    def fake_evaluate(model, enc, labels, collate, batch_size):
        weights = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
        if enc is encoded["dev"]:
            snapshots.append(weights)
            return {"macro_f1": next(scripted), "accuracy": 0.0}, []
        seen_at_test.append(weights)
        return real(model, enc, labels, collate, batch_size)

    monkeypatch.setattr(train_module, "evaluate_split", fake_evaluate)
    out = finetune_once(checked, data, encoded, train, seed=1)
    assert out.best_epoch == 2 and out.dev_scores == [0.2, 0.9, 0.5]
    assert torch.equal(seen_at_test[0], snapshots[1])
    assert not torch.equal(seen_at_test[0], snapshots[2])


@pytest.mark.parametrize("max_length", [16, 8])
def test_tiny_model_can_fit_a_small_ner_set(tiny_model, tmp_path, user_config, max_length):
    """Labels, windows and merging line up: the model can learn its own train set.

    max_length=8 cuts every sentence into several windows during training and prediction.
    """
    cfg = load_config(FinetuneConfig, user_config, [f"model={tiny_model}"])
    data = load_task(task_registry(cfg)["myner"], "mul", tmp_path)
    train = TrainConfig(epochs=15, batch_size=4, max_length=max_length, lr=5e-3, warmup_ratio=0.0, threads=1)
    checked = check_model_folder(tiny_model, train.max_length)
    encoded = {s: Encoded(data, s, checked, train) for s in data.splits}
    if max_length == 8:
        assert len(encoded["test"].windows) > 2 * encoded["test"].n_examples
    out = finetune_once(checked, data, encoded, train, seed=1)
    assert out.test["entities"] == sum(l.startswith("B-") for s in NER_SENTS for _, l in s) * 3
    assert out.test["f1"] >= 0.9


def _expected_test_rows(data_dir, name, lang, key):
    with open(data_dir / "eval" / name / "COUNTS.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["lang"] == lang and row["split"] == "test":
                return int(row[key])


def test_real_tasks_small_run(tiny_model, data_dir, tmp_path):
    """The built-in tasks end to end on the real files (small caps, one seed, full test sets)."""
    out = tmp_path / "out"
    assert (
        main(
            [
                f"model={tiny_model}",
                f"data_dir={data_dir}",
                f"out_dir={out}",
                "langs=[yor]",
                "seeds=[7]",
                "train.epochs=1",
                "train.max_train_examples=32",
                "train.max_dev_examples=32",
                "tasks=[masakhaner1,hedderich,yosm,afrisenti_yosm]",
            ]
        )
        == 0
    )
    rows = {r["task"]: r for r in read_csv(out / "results.csv")}
    assert sorted(rows) == ["afrisenti_yosm", "hedderich", "masakhaner1", "yosm"]
    assert int(rows["masakhaner1"]["n_test"]) == _expected_test_rows(data_dir, "masakhaner1", "yor", "sentences")
    assert int(rows["hedderich"]["n_test"]) == _expected_test_rows(data_dir, "hedderich_topics", "yor", "rows")
    assert (
        int(rows["yosm"]["n_test"])
        == int(rows["afrisenti_yosm"]["n_test"])
        == _expected_test_rows(data_dir, "yosm", "yor", "rows")
    )
    assert all(int(r["n_train"]) == 32 for r in rows.values())
    assert "YOSM" in rows["afrisenti_yosm"]["setting"]


@pytest.mark.slow
def test_make_finetune_default_preset(tiny_model, data_dir, tmp_path):
    """What `make finetune` runs: the tiny preset's default tasks, 3 seeds."""
    out = tmp_path / "out"
    assert main([f"model={tiny_model}", f"data_dir={data_dir}", f"out_dir={out}"]) == 0
    rows = read_csv(out / "results.csv")
    assert len(rows) == 15
    summary = read_csv(out / "summary.csv")
    assert {(r["task"], r["lang"]) for r in summary} >= {
        ("masakhaner1", "hau"),
        ("masakhaner1", "yor"),
        ("hedderich", "hau"),
        ("hedderich", "yor"),
        ("yosm", "yor"),
        ("masakhaner1", "avg"),
        ("hedderich", "avg"),
    }


def test_several_models_one_table(tiny_model, user_config, tmp_path):
    """Ours and another folder are compared by the same code, data and seed."""
    import shutil

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    out = tmp_path / "out"
    assert (
        main(
            [
                "--config",
                str(user_config),
                f"model={tiny_model}",
                f"models=[{other}]",
                f"out_dir={out}",
                "tasks=[mysent]",
                "seeds=[1]",
                "train.epochs=1",
            ]
        )
        == 0
    )
    rows = read_csv(out / "results.csv")
    assert sorted(r["model"] for r in rows) == sorted([f"{tiny_model.parent.name}/final", "other-model"])
    # Same weights, same seed: the same score, whichever folder they came from.
    assert rows[0]["test_score"] == rows[1]["test_score"]
