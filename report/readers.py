"""One small reader per stage output file (formats: docs/interfaces.md and each stage's docs).

The files a stage hands on are read by that stage's own reader (`common.corpus.read_stats`,
`pretrain.runfiles`, `finetune.results.read_results`); the functions here call them in their
tolerant mode and read the files only the report reads. Every reader returns None when its
file does not exist (the stage has not run yet), the parsed data otherwise. A file that exists
but cannot be read as its format says raises `InputError` naming the file (and line); a bad
line inside a JSON-lines or CSV file is skipped and reported through `Problems`, so one torn
line never hides a whole run. Nothing is dropped silently.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from common import corpus
from common.formats import FormatError, finite, jsonl_objects, need
from common.formats import read_json as _read_json
from finetune import results as finetune_results
from pretrain import runfiles
from pretrain.runfiles import Metrics

InputError = FormatError  # a stage's output file exists but is not in the expected format

__all__ = ["InputError", "Metrics", "Problems"]


class Problems:
    """Every malformed input met while building; each is printed to stderr as it is found.

    Per file, the first `per_file` bad lines are listed one by one; the rest are counted and
    summed up by `finish()` (a file in an older format would otherwise flood the report)."""

    def __init__(self, stream: TextIO | None = None, per_file: int = 5):
        self.items: list[str] = []
        self.stream = stream
        self.per_file = per_file
        self._by_file: dict[str, set[int]] = {}  # bad line numbers per file

    def add(self, message: str) -> None:
        if message in self.items:  # the same file read by two sections: say it once
            return
        self.items.append(message)
        print(f"[report] problem: {message}", file=self.stream or sys.stderr, flush=True)

    def line(self, path: Path, line: int, message: str) -> None:
        seen = self._by_file.setdefault(str(path), set())
        if line not in seen:  # a file read twice counts its bad lines once
            seen.add(line)
            if len(seen) <= self.per_file:
                self.add(f"{path}:{line}: {message}")

    def finish(self) -> None:
        for path, lines in sorted(self._by_file.items()):
            if len(lines) > self.per_file:
                self.add(f"{path}: {len(lines) - self.per_file} more bad line(s) not listed")
        self._by_file.clear()


# ------------------------------------------------------------------------- generic formats


def read_json(path: Path) -> Any:
    path = Path(path)
    return _read_json(path) if path.exists() else None


def read_jsonl(path: Path, problems: Problems) -> list[tuple[int, dict]] | None:
    """(line number, object) of every well-formed line; bad lines go to `problems`."""
    path = Path(path)
    return list(jsonl_objects(path, problems.line)) if path.exists() else None


def read_yaml(path: Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(path, f"not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise InputError(path, "top level must be a mapping")
    return data


# ------------------------------------------------------------------------- corpus stage


def read_corpus_stats(path: Path) -> dict | None:
    """out/corpus/stats.json: `common.corpus.read_stats`."""
    path = Path(path)
    return corpus.read_stats(path.parent) if path.exists() else None


def read_contamination(path: Path) -> dict | None:
    """out/corpus/contamination.json (pipeline/contamination.py): {"corpus_lines", "rows": [{set, lang,
    items, exact, folded}], "total", "samples": {set: [{key, how, lang, item, item_where, line, source}]}}."""
    audit = read_json(path)
    if audit is None:
        return None
    need(path, "top level", audit, ("rows", "total", "samples"), kind=None)
    need(path, "top level", audit, ("corpus_lines",))
    for i, row in enumerate(audit["rows"]):
        need(path, f"rows[{i}]", row, ("set", "lang"), kind=str)
        need(path, f"rows[{i}]", row, ("items", "exact", "folded"))
    return audit


def read_rejected_samples(folder: Path, limit: int, problems: Problems) -> dict[str, list[dict]] | None:
    """out/corpus/rejected/<reason>.jsonl -> the first `limit` samples per reason."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    samples = {}
    for path in sorted(folder.glob("*.jsonl")):
        rows = [obj for _, obj in read_jsonl(path, problems) or []]
        samples[path.stem] = rows[:limit]
    return samples


def read_manifest(path: Path) -> dict | None:
    manifest = read_json(path)
    if manifest is not None and not isinstance(manifest, dict):
        raise InputError(path, "expected a JSON object")
    return manifest


# ------------------------------------------------------------------------- tokenizer stage

TOKENIZER_KEYS = ("fertility", "unk_rate", "byte_rate")


def read_tokenizer_report(path: Path) -> dict | None:
    """out/tokenizer/report.json: {"vocab_size", "languages": {lang: {lines, fertility,
    chars_per_token, unk_rate, byte_rate, roundtrip_errors, sample_share, repeat_factor, ...}}}.
    A metric is null for a language without valid lines."""
    report = read_json(path)
    if report is None:
        return None
    need(path, "top level", report, ("languages",), kind=dict)
    for lang, row in report["languages"].items():
        need(path, f"languages.{lang}", row, TOKENIZER_KEYS, kind=(int, float, type(None)))
    return report


# ------------------------------------------------------------------------- pretraining


def read_metrics(path: Path, problems: Problems) -> Metrics | None:
    """out/pretrain/<run>/metrics.jsonl split by event (`pretrain.runfiles.read_metrics`)."""
    path = Path(path)
    return runfiles.read_metrics(path, problems.line) if path.exists() else None


def read_timing(path: Path, problems: Problems) -> list[dict] | None:
    """out/pretrain/<run>/timing.jsonl: step, tokens_per_s, elapsed_s, scoring_s, scoring_share."""
    path = Path(path)
    return runfiles.read_timing(path, problems.line) if path.exists() else None


# ------------------------------------------------------------------------- selection


@dataclass
class Round:
    """One selection/round-NNN.jsonl as the report draws it."""

    index: int
    summary: dict | None
    scores: dict[str, list[float]]  # lang -> scores of all scored candidates
    chosen_scores: dict[str, list[float]]  # lang -> scores of the chosen ones


def _round(path: Path, found: runfiles.Round, problems: Problems) -> Round:
    scores, chosen = defaultdict(list), defaultdict(list)
    for row in found.candidates:
        if finite(row.get("score")):
            scores[row["lang"]].append(float(row["score"]))
            if row.get("chosen"):
                chosen[row["lang"]].append(float(row["score"]))
    if found.summary is None:
        problems.add(f"{path}: no summary line (the round file is incomplete); its shares are left out")
    return Round(found.index, found.summary, dict(scores), dict(chosen))


def read_selection_round(path: Path, problems: Problems) -> Round | None:
    path = Path(path)
    return _round(path, runfiles.read_round(path, problems.line), problems) if path.exists() else None


def read_selection_rounds(folder: Path, problems: Problems) -> list[Round] | None:
    folder = Path(folder)
    paths = sorted(folder.glob("round-*.jsonl")) if folder.is_dir() else []
    if not paths:
        return None
    return sorted((read_selection_round(p, problems) for p in paths), key=lambda r: r.index)


def rounds_from_metrics(selections: list[dict]) -> list[Round]:
    """Round summaries from metrics.jsonl `selection` events (no scores): used when the round
    files are missing or have no summary line. Accepts the round summary nested as `summary`
    (pretrain/train.py), flat, or the older `chosen_per_lang` counts."""
    rounds = []
    for event in selections:
        if isinstance(event.get("summary"), dict):
            event = {**event, **event["summary"]}
        languages = event.get("languages")
        if not isinstance(languages, dict):
            per_lang = event.get("chosen_per_lang")
            if not isinstance(per_lang, dict):
                continue
            languages = {lang: {"chosen": n} for lang, n in per_lang.items()}
        rounds.append(Round(int(event["round"]), dict(event, languages=languages), {}, {}))
    return rounds


def selection_shares(rounds: list[Round]) -> tuple[list[int], dict[str, list[float]]]:
    """Rounds with a summary, and each language's share of the blocks chosen in them."""
    kept = [r for r in rounds if r.summary]
    langs = sorted({lang for r in kept for lang in r.summary["languages"]})
    shares = {lang: [] for lang in langs}
    for r in kept:
        per_lang = r.summary["languages"]
        total = sum(entry.get("chosen", 0) for entry in per_lang.values()) or 1
        for lang in langs:
            shares[lang].append(per_lang.get(lang, {}).get("chosen", 0) / total)
    return [r.index for r in kept], shares


# ------------------------------------------------------------------------- finetuning


def read_finetune_results(path: Path, problems: Problems) -> list[dict] | None:
    """out/finetune/<run>/results.csv: one row per task, lang, model, seed (scores in %;
    `finetune.results.read_results`)."""
    path = Path(path)
    return finetune_results.read_results(path, problems.line) if path.exists() else None


def summarise_results(rows: list[dict], task_averages: bool = False) -> list[dict]:
    """`finetune.results.summarise` keyed for the report: `mean` and `std` (sample std, 0 with one
    seed) of the test score per (task, lang, model); with `task_averages`, also its `avg` row per
    (task, model), the mean of the language means, whose `std` is None."""
    out = []
    for row in finetune_results.summarise(rows):
        average = row["lang"] == "avg"
        if average and not task_averages:
            continue
        out.append(
            {key: row[key] for key in ("task", "lang", "model", "metric", "seeds")}
            | {"mean": row["test_mean"], "std": None if average else row["test_std"]}
        )
    return out
