"""A small fake run folder in every stage's real output format, for tests and for trying the
report without running the pipeline, from the repository root: `python -m tests.support.report
/tmp/fake && python -m report.build out_dir=/tmp/fake`. Formats copied from pipeline/stats.py + finalize.py,
tokenizer/report.py, pretrain/train.py + runlog.py, pretrain/selection.py, finetune/results.py;
numbers are made up (seeded), not from a run."""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from finetune.results import COLUMNS as FINETUNE_RESULT_COLUMNS

LANGS = ("amh", "hau", "ibo", "swa", "yor")
SOURCES = {
    "amh": ["afrolm_amh"],
    "hau": ["afrolm_hau", "masakhanews_hau"],
    "ibo": ["afrolm_ibo"],
    "swa": ["afrolm_swa", "cc100_swa"],
    "yor": ["afrolm_yor", "bible_yor"],
}
REASONS = ("decontaminated", "exact_dup", "near_dup", "too_short", "wrong_script")
EVAL_SETS = ("masakhaner2", "masakhanews", "afrisenti")
SAMPLE_TEXT = {
    "yor": "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́.",
    "ibo": "Nwaanyị ahụ na-eri nri n'ụlọ ya.",
    "hau": "Yaron yana zuwa makaranta kowace rana.",
    "amh": "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።",
    "swa": "Mtoto anaenda shule kila siku 🙂.",
}
PLANTED = "<script>alert('x')</script> <b>bold</b> & Ẹ kú àárọ̀"


def _entry(rng: random.Random, read: int) -> dict:
    dropped = {r: rng.randint(0, read // 12) for r in REASONS}
    decontam = {s: rng.randint(0, dropped["decontaminated"]) for s in EVAL_SETS}
    # decontaminated = sum over eval sets, as in pipeline/stats.py
    dropped["decontaminated"] = sum(decontam.values())
    n_dropped = sum(dropped.values())
    kept = read - n_dropped
    valid = max(1, kept // 50)
    return {
        "records": read,
        "bytes_read": read * 90,
        "read": read,
        "read_bytes": read * 80,
        "kept": kept,
        "kept_bytes": kept * 75,
        "train": kept - valid,
        "valid": valid,
        "dropped": n_dropped,
        "dropped_bytes": n_dropped * 40,
        "dropped_by_reason": {k: v for k, v in sorted(dropped.items()) if v},
        "decontaminated_by_eval_set": {k: v for k, v in sorted(decontam.items()) if v},
    }


def _sum(entries: list[dict]) -> dict:
    total: dict = {}
    for e in entries:
        for key, value in e.items():
            if key == "sources":
                continue
            if isinstance(value, dict):
                bucket = total.setdefault(key, {})
                for sub, n in value.items():
                    bucket[sub] = bucket.get(sub, 0) + n
            else:
                total[key] = total.get(key, 0) + value
    return total


def write_corpus(out: Path, seed: int = 0) -> dict:
    rng = random.Random(seed)
    languages, decontam = {}, defaultdict(dict)
    for lang in LANGS:
        sources = {src: _entry(rng, rng.randint(2_000, 60_000)) for src in SOURCES[lang]}
        languages[lang] = {"sources": sources, **_sum(list(sources.values()))}
        for src, e in sources.items():
            for eval_set, n in e["decontaminated_by_eval_set"].items():
                decontam[src][eval_set] = decontam[src].get(eval_set, 0) + n
    stats = {"languages": languages, "total": _sum(list(languages.values())), "decontamination": dict(decontam)}
    corpus = out / "corpus"
    (corpus / "rejected").mkdir(parents=True, exist_ok=True)
    (corpus / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2, sort_keys=True), "utf-8")
    for reason in REASONS:
        rows = [
            {
                "reason": reason,
                "detail": "masakhanews" if reason == "decontaminated" else "",
                "source": SOURCES[lang][0],
                "lang": lang,
                "path": f"mono/{lang}/train.txt",
                "line_no": 10 + i,
                "text": PLANTED if (reason, lang) == ("too_short", "yor") else SAMPLE_TEXT[lang],
            }
            for i, lang in enumerate(LANGS)
        ]
        with (corpus / "rejected" / f"{reason}.jsonl").open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    _manifest(corpus, "corpus", corpus_hash="c0ffee" * 10, seconds=12.5, totals=stats["total"])
    write_contamination(corpus, rng)
    return stats


def write_contamination(corpus: Path, rng: random.Random) -> dict:
    """contamination.json as pipeline/contamination.py writes it."""
    rows = [
        {"set": s, "lang": lang, "items": rng.randint(100, 3000), "exact": 0, "folded": 0}
        for s in ("masakhaner2", "afrisenti")
        for lang in LANGS
    ]
    rows[0].update(exact=1, folded=1)  # one item left, as in a corpus cleaned against fewer sets
    audit = {
        "corpus_lines": 12345,
        "rows": rows,
        "total": {k: sum(r[k] for r in rows) for k in ("items", "exact", "folded")},
        "samples": {
            "masakhaner2": [
                {
                    "key": "exact",
                    "how": "words",
                    "lang": LANGS[0],
                    "split": "test",
                    "item": SAMPLE_TEXT[LANGS[0]],
                    "item_where": "test.txt:3",
                    "line": SAMPLE_TEXT[LANGS[0]],
                    "source": SOURCES[LANGS[0]][0],
                    "shard": "train",
                }
            ]
        },
    }
    (corpus / "contamination.json").write_text(json.dumps(audit, ensure_ascii=False, indent=2), "utf-8")
    return audit


def write_tokenizer(out: Path, seed: int = 0) -> dict:
    rng = random.Random(seed + 1)
    languages = {}
    for lang in LANGS:
        tokens, words = rng.randint(3_000, 9_000), rng.randint(1_500, 3_000)
        languages[lang] = {
            "lines": 50,
            "words": words,
            "chars": tokens * 3,
            "tokens": tokens,
            "fertility": tokens / words,
            "chars_per_token": 3.0,
            "unk_rate": 0.0,
            "byte_rate": rng.random() * 0.01,
            "unk_tokens": 0,
            "roundtrip_errors": 0,
            "train_chars_available": rng.randint(10**5, 10**7),
            "target_share": 0.2,
            "sample_chars": 600_000,
            "sample_share": 0.2,
            "repeat_factor": 1.0,
        }
    report = {
        "vocab_size": 8000,
        "languages": languages,
        "languages_without_valid_lines": [],
        "total_unk_tokens": 0,
        "total_roundtrip_errors": 0,
    }
    (out / "tokenizer" / "tiny").mkdir(parents=True, exist_ok=True)
    (out / "tokenizer" / "tiny" / "report.json").write_text(json.dumps(report, indent=2), "utf-8")
    _manifest(out / "tokenizer" / "tiny", "tokenizer", tokenizer_hash="beef" * 16, vocab_size=8000)
    return report


def write_pretrain(
    out: Path, run: str = "tiny-loss", strategy: str = "loss", steps: int = 40, select_every: int = 10, seed: int = 0
) -> Path:
    rng = random.Random(seed + 2)
    folder = out / "pretrain" / run
    (folder / "selection").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "out_dir": str(folder),
                "train": {"max_steps": steps, "batch_size": 8, "lr": 5e-4},
                "selection": {"strategy": strategy, "select_every": select_every, "blocks_per_round": 32},
            }
        ),
        "utf-8",
    )
    metrics, timing = [], []

    def evaluate(step: int) -> dict:
        return {
            lang: {
                "loss": round(9.0 - 0.08 * step * (1 + i / 10) + rng.random() * 0.1, 6),
                "ppl": 100.0,
                "targets": 400,
            }
            for i, lang in enumerate(LANGS)
        }

    metrics.append({"event": "warning", "step": 0, "message": "language tir has no valid lines"})
    metrics.append(
        {
            "event": "baseline",
            "step": 0,
            "kind": "unigram",
            "langs": {lang: {"loss": 7.0 + i / 10, "bpc": 2.5, "targets": 400} for i, lang in enumerate(LANGS)},
        }
    )
    metrics.append({"event": "eval", "step": 0, "langs": evaluate(0)})
    scoring = 0.0
    for round_index in range(steps // select_every):
        scored = strategy != "random" and round_index >= 1
        summary = _write_round(folder, round_index, strategy, scored, rng)
        metrics.append(
            {
                "event": "selection",
                "round": round_index,
                "step": round_index * select_every,
                "chosen": summary["chosen"],
                "blocks_needed": select_every * 8,
                "summary": summary,
            }
        )
        for step in range(round_index * select_every + 1, (round_index + 1) * select_every + 1):
            if step % 5 == 0:
                metrics.append(
                    {
                        "event": "train",
                        "step": step,
                        "loss": round(9.5 - 2 * math.log1p(step / 4), 6),
                        "lr": 5e-4,
                        "grad_norm": 1.5,
                        "tokens": step * 8 * 128,
                        "skipped_steps": 0,
                    }
                )
                scoring += 0.4 if scored else 0.05
                timing.append(
                    {
                        "step": step,
                        "tokens_per_s": 1500.0,
                        "elapsed_s": step * 0.8,
                        "scoring_s": round(scoring, 2),
                        "scoring_share": round(scoring / (step * 0.8), 4),
                    }
                )
            if step % 20 == 0:
                metrics.append({"event": "eval", "step": step, "langs": evaluate(step)})
    for name, rows in (("metrics.jsonl", metrics), ("timing.jsonl", timing)):
        (folder / name).write_text(
            "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), "utf-8"
        )
    _manifest(
        folder,
        "pretrain",
        summary={
            "parameters": 1_234_567,
            "steps": steps,
            "tokens": steps * 1024,
            "train_seconds": steps * 0.8,
            "scoring_seconds": round(scoring, 1),
        },
    )
    return folder


def _write_round(folder: Path, round_index: int, strategy: str, scored: bool, rng: random.Random) -> dict:
    records, per_lang = [], {}
    block = 0
    for i, lang in enumerate(LANGS):
        n_cand, quota = 12 + 4 * i, 4 + i
        reasons = ["gumbel"] * (quota - 1) + ["explore"] + ["not_chosen"] * (n_cand - quota)
        if not scored:
            reasons = ["random"] * quota + ["not_chosen"] * (n_cand - quota)
        for reason in reasons:
            score = round(rng.gauss(6.0 - round_index * 0.3 + i * 0.2, 0.5), 6) if scored else None
            records.append(
                {
                    "type": "candidate",
                    "round": round_index,
                    "block_id": block,
                    "lang": lang,
                    "score": score,
                    "z": 0.0 if scored else None,
                    "chosen": reason not in ("not_chosen", "junk_guard"),
                    "reason": reason,
                    "junk": None,
                    "generated": False,
                    **({"loss": score} if scored else {}),
                }
            )
            block += 1
        per_lang[lang] = {
            "pool": 400,
            "candidates": n_cand,
            "target": quota,
            "quota": quota,
            "chosen": quota,
            "shortfall": 0,
            "junk_flagged": 0,
            "junk_chosen": 0,
            "junk": {},
            "reasons": {r: reasons.count(r) for r in sorted(set(reasons))},
        }
    mode = "scored" if scored else ("random" if strategy == "random" else "warmup_random")
    summary = {
        "type": "summary",
        "round": round_index,
        "strategy": strategy,
        "mode": mode,
        "requested": 30,
        "chosen": sum(s["chosen"] for s in per_lang.values()),
        "candidates": sum(s["candidates"] for s in per_lang.values()),
        "shortfall": 0,
        "junk_flagged": 0,
        "junk_chosen": 0,
        "junk": {},
        "explore": 5 if scored else 0,
        "languages": per_lang,
    }
    with (folder / "selection" / f"round-{round_index:03d}.jsonl").open("w", encoding="utf-8") as handle:
        for rec in [*records, summary]:
            handle.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    return summary


# results.csv as written before finetuning recorded CPU seconds (the readers accept both).
FINETUNE_COLUMNS = [c for c in FINETUNE_RESULT_COLUMNS if c != "cpu_seconds"]


def write_finetune(out: Path, run: str = "tiny-loss", seeds: tuple[int, ...] = (1, 2, 3), seed: int = 0) -> Path:
    rng = random.Random(seed + 3)
    folder = out / "finetune" / run
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for task, metric, langs in (("masakhaner2", "f1", ("hau", "yor")), ("masakhanews", "macro_f1", ("swa",))):
        for lang in langs:
            for s in seeds:
                score = round(rng.uniform(40, 80), 4)
                rows.append(
                    {
                        "task": task,
                        "lang": lang,
                        "model": run,
                        "seed": s,
                        "setting": "full",
                        "metric": metric,
                        "test_score": score,
                        "dev_score": round(score + 1, 4),
                        "best_epoch": 2,
                        "epochs": 3,
                        "test_f1": score if metric == "f1" else "",
                        "test_precision": "",
                        "test_recall": "",
                        "test_accuracy": "",
                        "test_macro_f1": score if metric == "macro_f1" else "",
                        "n_train": 100,
                        "n_dev": 20,
                        "n_test": 20,
                        "seconds": 3.2,
                    }
                )
    with (folder / "results.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FINETUNE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    _manifest(folder, "finetune", runs=len(rows), seconds=60.0)
    return folder


def _manifest(folder: Path, stage: str, **extra) -> None:
    manifest = {"stage": stage, "config": {}, "inputs": {}, "outputs": {}, "created": "2026-01-01T00:00:00Z", **extra}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")


def write_fake_run(out: Path, runs: tuple[str, ...] = ("tiny-loss",)) -> Path:
    """Every stage's outputs under `out` (one pretrain + finetune folder per run)."""
    out = Path(out)
    write_corpus(out)
    write_tokenizer(out)
    for i, run in enumerate(runs):
        strategy = run.rsplit("-", 1)[-1]
        write_pretrain(out, run, strategy if strategy in ("random", "loss", "entropy", "reducible") else "loss", seed=i)
        write_finetune(out, run, seed=i)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/report-fake")
    write_fake_run(target, tuple(sys.argv[2:]) or ("tiny-loss",))
    print(target)
