"""Each reader on a small sample file in the real format of its stage (formats copied from
pipeline/stats.py, tokenizer/report.py, pretrain/train.py, pretrain/selection.py,
finetune/results.py), plus the malformed cases that must be named, not swallowed."""

from __future__ import annotations

import io
import json
import math

import pytest

from report import readers
from report.readers import InputError, Problems


def problems() -> Problems:
    return Problems(io.StringIO())


def write_lines(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def lang_entry(read, kept, reasons, decontam=None):
    return {
        "records": read,
        "bytes_read": read * 50,
        "read": read,
        "read_bytes": read * 40,
        "kept": kept,
        "kept_bytes": kept * 40,
        "train": kept - 2,
        "valid": 2,
        "dropped": read - kept,
        "dropped_bytes": (read - kept) * 30,
        "dropped_by_reason": reasons,
        "decontaminated_by_eval_set": decontam or {},
    }


STATS = {
    "languages": {
        "yor": {
            "sources": {"afrolm_yor": lang_entry(120, 100, {"exact_dup": 15, "decontaminated": 5}, {"masakhaner2": 5})},
            **lang_entry(120, 100, {"exact_dup": 15, "decontaminated": 5}, {"masakhaner2": 5}),
        },
        "amh": {
            "sources": {"afrolm_amh": lang_entry(40, 37, {"wrong_script": 3})},
            **lang_entry(40, 37, {"wrong_script": 3}),
        },
    },
    "total": lang_entry(160, 137, {"exact_dup": 15, "decontaminated": 5, "wrong_script": 3}),
    "decontamination": {"afrolm_yor": {"masakhaner2": 5}},
}


def test_corpus_stats_reads_counts(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(STATS), encoding="utf-8")
    stats = readers.read_corpus_stats(path)
    assert stats["languages"]["yor"]["kept"] == 100
    assert stats["languages"]["amh"]["dropped_by_reason"] == {"wrong_script": 3}
    assert stats["decontamination"]["afrolm_yor"]["masakhaner2"] == 5


def test_missing_files_are_none(tmp_path):
    p = problems()
    assert readers.read_corpus_stats(tmp_path / "stats.json") is None
    assert readers.read_rejected_samples(tmp_path / "rejected", 5, p) is None
    assert readers.read_tokenizer_report(tmp_path / "report.json") is None
    assert readers.read_metrics(tmp_path / "metrics.jsonl", p) is None
    assert readers.read_timing(tmp_path / "timing.jsonl", p) is None
    assert readers.read_selection_rounds(tmp_path / "selection", p) is None
    assert readers.read_finetune_results(tmp_path / "results.csv", p) is None
    assert p.items == []


def test_corpus_stats_missing_key_names_file_and_key(tmp_path):
    broken = json.loads(json.dumps(STATS))
    del broken["languages"]["amh"]["kept"]
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(InputError, match=r"stats\.json: languages\.amh: missing 'kept'"):
        readers.read_corpus_stats(path)


def test_corpus_stats_invalid_json_names_line(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text('{\n  "languages": {\n    "yor": {"read": 3,,}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"stats\.json:3: not valid JSON"):
        readers.read_corpus_stats(path)


def test_rejected_samples_limit_and_bad_line(tmp_path):
    folder = tmp_path / "rejected"
    rows = [
        {
            "reason": "too_short",
            "detail": "",
            "source": "afrolm_yor",
            "lang": "yor",
            "path": "mono/yor.txt",
            "line_no": i,
            "text": f"Ẹ kú {i} <script>",
        }
        for i in range(4)
    ]
    write_lines(folder / "too_short.jsonl", [rows[0], '{"reason": "too_short", "text": "torn', *rows[1:]])
    write_lines(folder / "near_dup.jsonl", [dict(rows[0], reason="near_dup", detail="afrolm_yor")])
    p = problems()
    samples = readers.read_rejected_samples(folder, 2, p)
    assert list(samples) == ["near_dup", "too_short"]
    assert [r["line_no"] for r in samples["too_short"]] == [0, 1]
    assert samples["too_short"][0]["text"] == "Ẹ kú 0 <script>"
    assert len(p.items) == 1 and "too_short.jsonl:2: not a JSON line" in p.items[0]


def test_tokenizer_report(tmp_path):
    report = {
        "vocab_size": 8000,
        "languages_without_valid_lines": ["tir"],
        "languages": {
            "amh": {
                "lines": 50,
                "fertility": 1.8,
                "chars_per_token": 2.1,
                "unk_rate": 0.0,
                "byte_rate": 0.004,
                "roundtrip_errors": 0,
                "sample_share": 0.1,
                "repeat_factor": 2.0,
            },
            "tir": {
                "lines": 0,
                "fertility": None,
                "chars_per_token": None,
                "unk_rate": None,
                "byte_rate": None,
                "roundtrip_errors": 0,
                "sample_share": 0.01,
                "repeat_factor": 3.5,
            },
        },
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    assert readers.read_tokenizer_report(path)["languages"]["amh"]["fertility"] == 1.8
    report["languages"]["amh"]["fertility"] = "high"
    path.write_text(json.dumps(report), encoding="utf-8")
    with pytest.raises(InputError, match=r"languages\.amh\.fertility: expected a number"):
        readers.read_tokenizer_report(path)


def test_metrics_split_by_event_and_torn_line(tmp_path):
    rows = [
        {"event": "warning", "step": 0, "message": "tir has no valid lines"},
        {
            "event": "eval",
            "step": 0,
            "langs": {
                "yor": {"loss": 9.1, "ppl": 8955.3, "targets": 40},
                "amh": {"loss": None, "ppl": None, "targets": 0},
            },
        },
        {
            "event": "selection",
            "round": 0,
            "step": 0,
            "chosen": 32,
            "blocks_needed": 80,
            "mode": "warmup_random",
            "languages": {"yor": {"chosen": 20}, "amh": {"chosen": 12}},
        },
        {"event": "train", "step": 5, "loss": 8.7, "lr": 1e-4, "grad_norm": 2.0, "tokens": 5120, "skipped_steps": 0},
        '{"event": "train", "step": 10, "loss": NaN, "tokens": 10240}',
        {"event": "checkpoint", "step": 10},
        {"event": "train", "step": 15, "loss": 7.9, "lr": 1e-4, "grad_norm": 1.0, "tokens": 15360, "skipped_steps": 0},
        '{"event": "eval", "step": 20, "langs": {"yor": {"lo',  # killed mid-write
    ]
    p = problems()
    metrics = readers.read_metrics(write_lines(tmp_path / "metrics.jsonl", rows), p)
    assert [r["step"] for r in metrics.train] == [5, 15]
    assert len(metrics.evals) == 1 and metrics.evals[0]["langs"]["yor"]["loss"] == 9.1
    assert metrics.selections[0]["languages"]["yor"]["chosen"] == 20
    assert metrics.warnings[0]["message"] == "tir has no valid lines"
    joined = "\n".join(p.items)
    assert "metrics.jsonl:5: train loss nan" in joined
    assert "metrics.jsonl:6: unknown event 'checkpoint'" in joined
    assert "metrics.jsonl:8: not a JSON line" in joined


def test_timing(tmp_path):
    rows = [
        {"step": 5, "tokens_per_s": 900.0, "elapsed_s": 4.0, "scoring_s": 1.0, "scoring_share": 0.25},
        {"step": 10, "tokens_per_s": 900.0, "elapsed_s": "soon", "scoring_s": 1.0},
    ]
    p = problems()
    timing = readers.read_timing(write_lines(tmp_path / "timing.jsonl", rows), p)
    assert [r["step"] for r in timing] == [5]
    assert "timing.jsonl:2" in p.items[0]


def candidate(round_index, block_id, lang, score, chosen, reason):
    return {
        "type": "candidate",
        "round": round_index,
        "block_id": block_id,
        "lang": lang,
        "score": score,
        "z": 0.1 if score is not None else None,
        "chosen": chosen,
        "reason": reason,
        "junk": None,
        "generated": False,
        **({"loss": score} if score is not None else {}),
    }


def summary(round_index, chosen_by_lang, mode="scored"):
    return {
        "type": "summary",
        "round": round_index,
        "strategy": "loss",
        "mode": mode,
        "requested": 4,
        "chosen": sum(chosen_by_lang.values()),
        "candidates": 6,
        "shortfall": 0,
        "junk_flagged": 0,
        "junk_chosen": 0,
        "junk": {},
        "explore": 0,
        "languages": {
            lang: {
                "pool": 10,
                "candidates": 3,
                "target": n,
                "quota": n,
                "chosen": n,
                "shortfall": 0,
                "junk_flagged": 0,
                "junk_chosen": 0,
                "junk": {},
                "reasons": {},
            }
            for lang, n in chosen_by_lang.items()
        },
    }


def test_selection_rounds_scores_and_shares(tmp_path):
    folder = tmp_path / "selection"
    write_lines(
        folder / "round-000.jsonl",
        [
            candidate(0, 1, "yor", None, True, "random"),
            candidate(0, 2, "amh", None, True, "random"),
            summary(0, {"yor": 1, "amh": 1}, mode="warmup_random"),
        ],
    )
    write_lines(
        folder / "round-001.jsonl",
        [
            candidate(1, 1, "yor", 5.5, True, "gumbel"),
            candidate(1, 3, "yor", 4.5, False, "not_chosen"),
            candidate(1, 2, "amh", float("nan"), False, "junk_guard"),
            candidate(1, 4, "amh", 6.0, True, "gumbel"),
            candidate(1, 5, "amh", 7.0, True, "explore"),
            summary(1, {"yor": 1, "amh": 3}),
        ],
    )
    write_lines(folder / "round-002.jsonl", [candidate(2, 1, "yor", 5.0, True, "gumbel")])  # no summary yet
    p = problems()
    rounds = readers.read_selection_rounds(folder, p)
    assert [r.index for r in rounds] == [0, 1, 2]
    assert rounds[0].scores == {}
    assert rounds[1].scores == {"yor": [5.5, 4.5], "amh": [6.0, 7.0]}
    assert rounds[1].chosen_scores == {"yor": [5.5], "amh": [6.0, 7.0]}
    index, shares = readers.selection_shares(rounds)
    assert index == [0, 1]
    assert shares == {"amh": [0.5, 0.75], "yor": [0.5, 0.25]}
    assert any("round-002.jsonl: no summary line" in item for item in p.items)


CSV_HEADER = (
    "task,lang,model,seed,setting,metric,test_score,dev_score,best_epoch,epochs,test_f1,test_precision,"
    "test_recall,test_accuracy,test_macro_f1,n_train,n_dev,n_test,seconds\n"
)


def test_finetune_results_mean_std(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(
        CSV_HEADER
        + "masakhaner2,yor,tiny-loss,1,full,f1,50.0,52.0,2,3,50.0,,,,,100,20,20,3.1\n"
        + "masakhaner2,yor,tiny-loss,2,full,f1,60.0,61.0,3,3,60.0,,,,,100,20,20,3.0\n"
        + "masakhaner2,yor,tiny-loss,3,full,f1,70.0,71.0,1,3,70.0,,,,,100,20,20,3.2\n"
        + "masakhaner2,hau,tiny-loss,1,full,f1,,,,3,,,,,,100,20,20,3.2\n"
        + "masakhanews,swa,tiny-loss,1,full,macro_f1,81.25,80.0,2,3,,,,,81.25,90,20,20,2.0\n",
        encoding="utf-8",
    )
    p = problems()
    rows = readers.read_finetune_results(path, p)
    assert len(rows) == 4
    assert "results.csv:5: test_score '' is not a number" in p.items[0]
    summary = {(r["task"], r["lang"]): r for r in readers.summarise_results(rows)}
    assert summary[("masakhaner2", "yor")]["seeds"] == 3
    assert summary[("masakhaner2", "yor")]["mean"] == pytest.approx(60.0)
    assert summary[("masakhaner2", "yor")]["std"] == pytest.approx(10.0)  # sample std, ddof=1
    assert summary[("masakhanews", "swa")]["std"] == 0.0
    assert math.isclose(summary[("masakhanews", "swa")]["mean"], 81.25)


def test_finetune_results_bad_header(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("task,lang,score\nner,yor,50\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"results\.csv:1: header lacks column\(s\) model, seed, test_score"):
        readers.read_finetune_results(path, problems())


def test_problems_go_to_stderr_once(capsys):
    p = Problems()
    p.add("x.jsonl:3: bad")
    p.add("x.jsonl:3: bad")
    assert p.items == ["x.jsonl:3: bad"]
    assert capsys.readouterr().err.count("x.jsonl:3: bad") == 1


def test_rounds_from_metrics_accepts_both_summaries():
    events = [
        {
            "event": "selection",
            "round": 0,
            "step": 0,
            "chosen": 4,
            "languages": {"yor": {"chosen": 3}, "amh": {"chosen": 1}},
        },
        {"event": "selection", "round": 1, "step": 10, "chosen": 4, "chosen_per_lang": {"yor": 2, "amh": 2}},
        {"event": "selection", "round": 2, "step": 20, "chosen": 4},  # nothing per language: left out
        {
            "event": "selection",
            "round": 3,
            "step": 30,
            "chosen": 4,
            "blocks_needed": 8,
            "summary": summary(3, {"yor": 1, "amh": 3}),
        },
    ]
    rounds = readers.rounds_from_metrics(events)
    assert [r.index for r in rounds] == [0, 1, 3]
    assert readers.selection_shares(rounds) == ([0, 1, 3], {"amh": [0.25, 0.5, 0.75], "yor": [0.75, 0.5, 0.25]})
    assert rounds[2].summary["mode"] == "scored"


def test_problems_are_capped_per_file_and_counted_once():
    p = problems()
    for line in range(1, 9):
        p.line("old/round-000.jsonl", line, "unknown line type None; skipped")
    for line in range(1, 9):  # the same file read again by another section
        p.line("old/round-000.jsonl", line, "unknown line type None; skipped")
    p.finish()
    assert len(p.items) == 6
    assert p.items[-1] == "old/round-000.jsonl: 3 more bad line(s) not listed"
