"""One small reader per stage output file (formats: docs/interfaces.md and each stage's docs).

Every reader returns None when its file does not exist (the stage has not run yet), the parsed
data otherwise. A file that exists but cannot be read as its format says raises `InputError`
naming the file (and line); a bad line inside a JSON-lines or CSV file is skipped and reported
through `Problems`, so one torn line never hides a whole run. Nothing is dropped silently.
"""
from __future__ import annotations

import csv
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml


class InputError(ValueError):
    """A stage's output file exists but is not in the expected format."""

    def __init__(self, path: Path, message: str, line: int | None = None):
        self.path, self.line = Path(path), line
        super().__init__(f"{path}{f':{line}' if line else ''}: {message}")


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
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON: {err.msg} (column {err.colno})", err.lineno) from None


def read_jsonl(path: Path, problems: Problems) -> list[tuple[int, dict]] | None:
    """(line number, object) of every well-formed line; bad lines go to `problems`."""
    path = Path(path)
    if not path.exists():
        return None
    rows = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                problems.line(path, number, f"not a JSON line, skipped ({err})")
                continue
            if not isinstance(obj, dict):
                problems.line(path, number, f"expected a JSON object, got {type(obj).__name__}; skipped")
                continue
            rows.append((number, obj))
    return rows


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


def _need(path: Path, where: str, obj: Any, keys: tuple[str, ...], kind=(int, float)) -> None:
    if not isinstance(obj, dict):
        raise InputError(path, f"{where}: expected a mapping, got {type(obj).__name__}")
    for key in keys:
        if key not in obj:
            raise InputError(path, f"{where}: missing {key!r}")
        if kind is not None and not isinstance(obj[key], kind):
            raise InputError(path, f"{where}.{key}: expected a number, got {obj[key]!r}")


# ------------------------------------------------------------------------- corpus stage

LANG_KEYS = ("read", "kept", "dropped")


def read_corpus_stats(path: Path) -> dict | None:
    """out/corpus/stats.json: {"languages": {lang: {read, kept, train, valid, dropped,
    dropped_by_reason, decontaminated_by_eval_set, sources: {...}}}, "total", "decontamination"}."""
    stats = read_json(path)
    if stats is None:
        return None
    _need(path, "top level", stats, ("languages",), kind=dict)
    for lang, entry in stats["languages"].items():
        _need(path, f"languages.{lang}", entry, LANG_KEYS)
        reasons = entry.get("dropped_by_reason", {})
        _need(path, f"languages.{lang}.dropped_by_reason", reasons, tuple(reasons))
    decontam = stats.get("decontamination", {})
    for source, sets in decontam.items():
        _need(path, f"decontamination.{source}", sets, tuple(sets))
    return stats


def read_contamination(path: Path) -> dict | None:
    """out/corpus/contamination.json (pipeline/contamination.py): {"corpus_lines", "rows": [{set, lang,
    items, exact, folded}], "total", "samples": {set: [{key, how, lang, item, item_where, line, source}]}}."""
    audit = read_json(path)
    if audit is None:
        return None
    _need(path, "top level", audit, ("rows", "total", "samples"), kind=None)
    _need(path, "top level", audit, ("corpus_lines",))
    for i, row in enumerate(audit["rows"]):
        _need(path, f"rows[{i}]", row, ("set", "lang"), kind=str)
        _need(path, f"rows[{i}]", row, ("items", "exact", "folded"))
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
    _need(path, "top level", report, ("languages",), kind=dict)
    for lang, row in report["languages"].items():
        _need(path, f"languages.{lang}", row, TOKENIZER_KEYS, kind=(int, float, type(None)))
    return report


# ------------------------------------------------------------------------- pretraining


@dataclass
class Metrics:
    """out/pretrain/<run>/metrics.jsonl split by event."""

    train: list[dict] = field(default_factory=list)      # step, loss, lr, tokens, grad_norm
    evals: list[dict] = field(default_factory=list)      # step, langs: {lang: {loss, ppl, bpc, targets}}
    baseline: dict = field(default_factory=dict)         # lang: {loss, bpc, targets} of the unigram
    selections: list[dict] = field(default_factory=list)  # round summaries (no timings)
    warnings: list[dict] = field(default_factory=list)


EVENT_KEYS = {"train": ("step", "loss"), "eval": ("step", "langs"), "selection": ("round",),
              "warning": ("message",), "baseline": ("langs",)}


def read_metrics(path: Path, problems: Problems) -> Metrics | None:
    rows = read_jsonl(path, problems)
    if rows is None:
        return None
    metrics = Metrics()
    target = {"train": metrics.train, "eval": metrics.evals, "selection": metrics.selections,
              "warning": metrics.warnings}
    for number, row in rows:
        event = row.get("event")
        if event not in EVENT_KEYS:
            problems.line(path, number, f"unknown event {event!r}; skipped")
            continue
        missing = [k for k in EVENT_KEYS[event] if k not in row]
        if missing:
            problems.line(path, number, f"{event} line without {', '.join(missing)}; skipped")
            continue
        if event == "train" and not _finite(row["loss"]):
            problems.line(path, number, f"train loss {row['loss']!r} is not a finite number; skipped")
            continue
        if event == "baseline":
            metrics.baseline = row["langs"] if isinstance(row["langs"], dict) else {}
            continue
        target[event].append(row)
    return metrics


def read_timing(path: Path, problems: Problems) -> list[dict] | None:
    """out/pretrain/<run>/timing.jsonl: step, tokens_per_s, elapsed_s, scoring_s, scoring_share."""
    rows = read_jsonl(path, problems)
    if rows is None:
        return None
    out = []
    for number, row in rows:
        if not all(_finite(row.get(k)) for k in ("step", "elapsed_s", "scoring_s")):
            problems.line(path, number, "timing line needs numeric step, elapsed_s, scoring_s; skipped")
            continue
        out.append(row)
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------------- selection

ROUND_FILE = re.compile(r"round-(\d+)\.jsonl$")


@dataclass
class Round:
    """One selection/round-NNN.jsonl: candidate lines, then a summary line."""

    index: int
    summary: dict | None
    scores: dict[str, list[float]]          # lang -> scores of all scored candidates
    chosen_scores: dict[str, list[float]]   # lang -> scores of the chosen ones


def read_selection_round(path: Path, problems: Problems) -> Round | None:
    rows = read_jsonl(path, problems)
    if rows is None:
        return None
    match = ROUND_FILE.search(Path(path).name)
    index = int(match.group(1)) if match else -1
    summary, scores, chosen = None, defaultdict(list), defaultdict(list)
    for number, row in rows:
        kind = row.get("type")
        if kind == "summary":
            if not isinstance(row.get("languages"), dict):
                problems.line(path, number, "summary line without a 'languages' mapping; skipped")
                continue
            summary = row
        elif kind == "candidate":
            if "lang" not in row:
                problems.line(path, number, "candidate line without 'lang'; skipped")
                continue
            if _finite(row.get("score")):
                scores[row["lang"]].append(float(row["score"]))
                if row.get("chosen"):
                    chosen[row["lang"]].append(float(row["score"]))
        else:
            problems.line(path, number, f"unknown line type {kind!r}; skipped")
    if summary is None:
        problems.add(f"{path}: no summary line (the round file is incomplete); "
                     "its shares are left out")
    return Round(index, summary, dict(scores), dict(chosen))


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

RESULT_COLUMNS = ("task", "lang", "model", "seed", "test_score")


def read_finetune_results(path: Path, problems: Problems) -> list[dict] | None:
    """out/finetune/<run>/results.csv: one row per task, lang, model, seed (scores in %)."""
    path = Path(path)
    if not path.exists():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in RESULT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(path, f"header lacks column(s) {', '.join(missing)}", 1)
        rows = []
        for row in reader:
            try:
                row["test_score"] = float(row["test_score"])
                row["dev_score"] = float(row["dev_score"]) if row.get("dev_score") not in (None, "") else None
            except (TypeError, ValueError):
                problems.line(path, reader.line_num, f"test_score {row.get('test_score')!r} is not a number; skipped")
                continue
            rows.append(row)
    return rows


def summarise_results(rows: list[dict]) -> list[dict]:
    """Mean ± sample std (ddof=1; 0 with one seed) of the test score over seeds, per
    (task, lang, model) — the same convention as finetune/results.py."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["lang"], row["model"])].append(row)
    out = []
    for (task, lang, model), members in sorted(groups.items()):
        scores = [r["test_score"] for r in members]
        out.append({"task": task, "lang": lang, "model": model, "metric": members[0].get("metric", ""),
                    "seeds": len(scores), "mean": statistics.fmean(scores),
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0})
    return out
