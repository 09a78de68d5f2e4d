"""The results table: one row per task, language, model and seed, plus mean ± std summaries.

Scores are percentages (F1 x 100), like the papers. `std` is the sample standard deviation
over seeds (ddof=1; 0 with one seed). The per-task average over languages (the papers'
"average F1") is the mean of the per-language means. `write_tables` writes results.csv (one
writer), `read_results` reads it back (one reader: the report, publish, the benches and the
study go through it); docs/interfaces.md has the columns.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import TypedDict

from common.formats import FormatError, OnProblem, problem
from common.io import atomic_write

COLUMNS = [
    "task",
    "lang",
    "model",
    "seed",
    "setting",
    "metric",
    "test_score",
    "dev_score",
    "best_epoch",
    "epochs",
    "test_f1",
    "test_precision",
    "test_recall",
    "test_accuracy",
    "test_macro_f1",
    "n_train",
    "n_dev",
    "n_test",
    "seconds",
    "cpu_seconds",
]
SUMMARY_COLUMNS = ["task", "lang", "model", "metric", "seeds", "test_mean", "test_std", "dev_mean", "dev_std"]
REQUIRED = ("task", "lang", "model", "seed", "test_score")  # what a reader needs in every row
INTS = ("seed", "best_epoch", "epochs", "n_train", "n_dev", "n_test")
NUMBERS = (
    "test_score",
    *INTS,
    *(c for c in COLUMNS if c.startswith(("test_", "dev_")) and c != "test_score"),
    "seconds",
    "cpu_seconds",
)


class ResultRow(TypedDict, total=False):
    """One row of results.csv as `read_results` returns it (as `result_row` writes it)."""

    task: str  # finetune task name (common/eval_sets.yaml)
    lang: str
    model: str  # the model folder (or Hub id) finetuned
    seed: int
    setting: str
    metric: str  # the task's main metric; test_score and dev_score are of it
    test_score: float  # %, at the best dev epoch
    dev_score: float | None  # % (None where empty)
    best_epoch: int | None
    epochs: int | None
    test_f1: float | None  # the other test metrics, % (None where the task has none)
    test_precision: float | None
    test_recall: float | None
    test_accuracy: float | None
    test_macro_f1: float | None
    n_train: int | None  # examples per split
    n_dev: int | None
    n_test: int | None
    seconds: float | None  # wall time of the run
    cpu_seconds: float | None


def result_row(
    task: str, lang: str, model: str, seed: int, setting: str, metric: str, out, epochs: int, sizes: dict[str, int]
) -> dict:
    pct = lambda x: None if x is None else round(100 * x, 4)  # noqa: E731
    test = out.test
    return {
        "task": task,
        "lang": lang,
        "model": model,
        "seed": seed,
        "setting": setting,
        "metric": metric,
        "test_score": pct(test[metric]),
        "dev_score": pct(out.dev[metric]),
        "best_epoch": out.best_epoch,
        "epochs": epochs,
        "test_f1": pct(test.get("f1")),
        "test_precision": pct(test.get("precision")),
        "test_recall": pct(test.get("recall")),
        "test_accuracy": pct(test.get("accuracy")),
        "test_macro_f1": pct(test.get("macro_f1")),
        "n_train": sizes["train"],
        "n_dev": sizes["dev"],
        "n_test": sizes["test"],
        "seconds": round(out.seconds, 1),
        "cpu_seconds": round(out.cpu_seconds, 1),
    }


def read_results(path: str | Path, on_problem: OnProblem | None = None) -> list[ResultRow]:
    """results.csv, typed: numbers as int or float, an empty cell None; columns it does not know
    stay text. A header without the REQUIRED columns raises `FormatError`; a row whose
    test_score or another number does not parse is refused (given `on_problem`: reported and
    skipped)."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise FormatError(path, f"header lacks column(s) {', '.join(missing)}", 1)
        rows = []
        for row in reader:
            bad = _typed(row)
            if bad:
                problem(on_problem, path, reader.line_num, f"{bad} {row.get(bad)!r} is not a number")
                continue
            rows.append(row)
    return rows


def _typed(row: dict) -> str | None:
    """Convert `row`'s numbers in place; the first column that does not parse, else None."""
    if row.get("test_score") in (None, ""):
        return "test_score"
    for column in NUMBERS:
        value = row.get(column)
        if isinstance(value, str):
            try:
                row[column] = None if value == "" else (int if column in INTS else float)(value)
            except ValueError:
                return column
    return None


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (task, lang, model); then an `avg` row per (task, model)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["lang"], row["model"])].append(row)
    summary = []
    for (task, lang, model), members in sorted(groups.items()):
        test_mean, test_std = _mean_std([r["test_score"] for r in members])
        dev = [r["dev_score"] for r in members if r.get("dev_score") is not None]
        dev_mean, dev_std = _mean_std(dev) if dev else (math.nan, math.nan)
        summary.append(
            {
                "task": task,
                "lang": lang,
                "model": model,
                "metric": members[0].get("metric", ""),
                "seeds": len(members),
                "test_mean": round(test_mean, 2),
                "test_std": round(test_std, 2),
                "dev_mean": round(dev_mean, 2),
                "dev_std": round(dev_std, 2),
            }
        )
    by_task: dict[tuple, list[dict]] = defaultdict(list)
    for row in summary:
        by_task[(row["task"], row["model"])].append(row)
    for (task, model), members in sorted(by_task.items()):
        if len(members) > 1:
            summary.append(
                {
                    "task": task,
                    "lang": "avg",
                    "model": model,
                    "metric": members[0]["metric"],
                    "seeds": members[0]["seeds"],
                    "test_mean": round(statistics.fmean(m["test_mean"] for m in members), 2),
                    "test_std": "",
                    "dev_mean": round(statistics.fmean(m["dev_mean"] for m in members), 2),
                    "dev_std": "",
                }
            )
    return summary


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _md_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def markdown(rows: list[dict], summary: list[dict], header: str) -> str:
    pretty = [
        dict(
            r,
            **{
                "test (mean ± std)": f"{r['test_mean']:.2f}"
                + (f" ± {r['test_std']:.2f}" if r["test_std"] != "" else ""),
                "dev (mean)": f"{r['dev_mean']:.2f}",
            },
        )
        for r in summary
    ]
    short = ["task", "lang", "model", "metric", "seeds", "test (mean ± std)", "dev (mean)"]
    run_cols = [
        "task",
        "lang",
        "model",
        "seed",
        "metric",
        "test_score",
        "dev_score",
        "best_epoch",
        "n_train",
        "n_dev",
        "n_test",
        "seconds",
        "cpu_seconds",
    ]
    return (
        f"{header}\n\n## Summary (test score of the best dev epoch, %, mean ± std over seeds)\n\n"
        f"{_md_table(pretty, short)}\n\n## Runs\n\n{_md_table(rows, run_cols)}\n"
    )


def write_tables(out_dir: Path, rows: list[dict], header: str) -> list[Path]:
    summary = summarise(rows)
    paths = [out_dir / "results.csv", out_dir / "summary.csv", out_dir / "results.md"]
    for path, text in zip(
        paths, (_csv_text(rows, COLUMNS), _csv_text(summary, SUMMARY_COLUMNS), markdown(rows, summary, header))
    ):
        with atomic_write(path) as handle:
            handle.write(text)
    return paths
