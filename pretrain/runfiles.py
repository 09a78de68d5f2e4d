"""The files a pretraining run leaves for the later stages: one writer and one reader each.

    metrics.jsonl               deterministic events: train, eval, baseline, selection, warning
                                (bit-identical on resume: the log is cut back to the checkpoint)
    timing.jsonl                wall-clock figures (tokens/s, scoring share): never compared
    selection/round-NNN.jsonl   one line per candidate of a selection round, then its summary

The schemas (event names, keys, types, meaning) are in docs/interfaces.md; the TypedDicts
below are the same in code. Lines are JSON objects with sorted keys, non-ASCII as is. Readers
are strict unless given `on_problem` (common/formats.py); they check a file's JSON first, then
its lines, and report in that order. No torch here: the report, publish,
the study and the benches read runs without it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

from common.formats import OnProblem, finite, jsonl_objects, problem
from common.io import atomic_write

METRICS = "metrics.jsonl"
TIMING = "timing.jsonl"
SELECTION_DIR = "selection"
ROUND_FILE = re.compile(r"round-(\d+)\.jsonl$")


def round_path(out_dir: str | Path, round_index: int) -> Path:
    return Path(out_dir) / SELECTION_DIR / f"round-{round_index:03d}.jsonl"


# ------------------------------------------------------------------ schemas


class LangEval(TypedDict):
    """One language's validation result (pretrain/validation.py, fixed masked positions)."""

    loss: float | None  # mean loss per masked target, nats
    ppl: float | None  # exp(loss), capped at exp(50)
    bpc: float | None  # bits per character of the masked text
    targets: int  # masked targets scored


class LangBaseline(TypedDict, total=False):
    loss: float  # the unigram's mean loss on the same targets, nats
    bpc: float | None
    targets: int
    bigram: dict  # {"loss", "bpc"} of the left-neighbour bigram counts


class TrainEvent(TypedDict):
    event: Literal["train"]
    step: int  # optimizer steps done
    loss: float  # mean training loss per masked target since the last train line
    lr: float
    grad_norm: float  # before clipping
    tokens: int  # non-padding tokens trained on so far (all ranks)
    skipped_steps: int  # non-finite steps skipped so far


class EvalEvent(TypedDict):
    event: Literal["eval"]
    step: int
    langs: dict[str, LangEval]


class BaselineEvent(TypedDict):
    event: Literal["baseline"]
    step: int  # 0: written once, before training
    kind: Literal["unigram"]
    langs: dict[str, LangBaseline]


class SelectionEvent(TypedDict):
    event: Literal["selection"]
    round: int
    step: int  # the step the round starts at
    chosen: int  # blocks chosen
    blocks_needed: int  # block-steps of the round (select_every x global batch)
    summary: dict  # the round file's summary line without its wall-clock keys


class WarningEvent(TypedDict):
    event: Literal["warning"]
    step: int
    message: str


class TimingRecord(TypedDict):
    step: int
    tokens_per_s: float  # since the previous line
    elapsed_s: float  # training wall time so far, all sessions
    scoring_s: float  # of which selection rounds
    scoring_share: float  # scoring_s / elapsed_s


# Keys every line of an event needs (the reader skips or refuses lines without them).
EVENT_KEYS = {
    "train": ("step", "loss"),
    "eval": ("step", "langs"),
    "selection": ("round",),
    "warning": ("message",),
    "baseline": ("langs",),
}


# ------------------------------------------------------------------ writers


class JsonlLog:
    """Append-only JSON lines, one flush+fsync per record; truncatable to a checkpointed size."""

    def __init__(self, path: Path, truncate_to: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is not None:
            with open(self.path, "ab") as handle:
                handle.truncate(truncate_to)  # drop lines written after the checkpoint

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(_line(record))
            handle.flush()
            os.fsync(handle.fileno())

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


class MetricsLog(JsonlLog):
    """metrics.jsonl: one method per event."""

    def train(self, step: int, loss: float, lr: float, grad_norm: float, tokens: int, skipped_steps: int) -> None:
        self.write(
            TrainEvent(
                event="train",
                step=step,
                loss=round(loss, 6),
                lr=lr,
                grad_norm=round(grad_norm, 6),
                tokens=tokens,
                skipped_steps=skipped_steps,
            )
        )

    def eval(self, step: int, langs: dict[str, LangEval]) -> None:
        self.write(EvalEvent(event="eval", step=step, langs=langs))

    def baseline(self, langs: dict[str, LangBaseline]) -> None:
        self.write(BaselineEvent(event="baseline", step=0, kind="unigram", langs=langs))

    def selection(self, round_index: int, step: int, chosen: int, blocks_needed: int, summary: dict) -> None:
        """Wall-clock figures (keys with "second") stay out: they go to timing.jsonl."""
        clean = {k: v for k, v in summary.items() if "second" not in k}
        self.write(
            SelectionEvent(
                event="selection",
                round=round_index,
                step=step,
                chosen=int(chosen),
                blocks_needed=int(blocks_needed),
                summary=clean,
            )
        )

    def warning(self, step: int, message: str) -> None:
        self.write(WarningEvent(event="warning", step=step, message=message))


class TimingLog(JsonlLog):
    """timing.jsonl: one line per train line of metrics.jsonl."""

    def record(self, step: int, tokens_per_s: float, elapsed_s: float, scoring_s: float, scoring_share: float) -> None:
        self.write(
            TimingRecord(
                step=step,
                tokens_per_s=round(tokens_per_s, 1),
                elapsed_s=round(elapsed_s, 2),
                scoring_s=round(scoring_s, 2),
                scoring_share=round(scoring_share, 4),
            )
        )


def write_round(path: Path, candidates: list[dict], summary: dict) -> None:
    """A round file, whole or not at all: the candidate lines, then the summary line."""
    with atomic_write(path) as handle:
        for rec in [*candidates, summary]:
            handle.write(_line(rec))


def _line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


# ------------------------------------------------------------------ readers


@dataclass
class Metrics:
    """metrics.jsonl split by event, in file order."""

    train: list[TrainEvent] = field(default_factory=list)
    evals: list[EvalEvent] = field(default_factory=list)
    baseline: dict[str, LangBaseline] = field(default_factory=dict)  # the baseline event's langs
    selections: list[SelectionEvent] = field(default_factory=list)
    warnings: list[WarningEvent] = field(default_factory=list)


def read_metrics(path: str | Path, on_problem: OnProblem | None = None) -> Metrics:
    """Every event of `path`; a line with an unknown event, without its keys or with a
    non-finite train loss is refused (or, given `on_problem`, reported and skipped)."""
    metrics = Metrics()
    target = {
        "train": metrics.train,
        "eval": metrics.evals,
        "selection": metrics.selections,
        "warning": metrics.warnings,
    }
    for number, row in list(jsonl_objects(path, on_problem)):
        event = row.get("event")
        if event not in EVENT_KEYS:
            problem(on_problem, path, number, f"unknown event {event!r}")
            continue
        missing = [k for k in EVENT_KEYS[event] if k not in row]
        if missing:
            problem(on_problem, path, number, f"{event} line without {', '.join(missing)}")
            continue
        if event == "train" and not finite(row["loss"]):
            problem(on_problem, path, number, f"train loss {row['loss']!r} is not a finite number")
            continue
        if event == "baseline":
            metrics.baseline = row["langs"] if isinstance(row["langs"], dict) else {}
            continue
        target[event].append(row)
    return metrics


def read_timing(path: str | Path, on_problem: OnProblem | None = None) -> list[TimingRecord]:
    out = []
    for number, row in list(jsonl_objects(path, on_problem)):
        if not all(finite(row.get(k)) for k in ("step", "elapsed_s", "scoring_s")):
            problem(on_problem, path, number, "timing line needs numeric step, elapsed_s, scoring_s")
            continue
        out.append(row)
    return out


@dataclass
class Round:
    """One selection/round-NNN.jsonl."""

    index: int  # from the file name (-1 when it has none)
    candidates: list[dict]  # "candidate" lines, in file order
    summary: dict | None  # the "summary" line; None when the file has none (cut short)


def read_round(path: str | Path, on_problem: OnProblem | None = None) -> Round:
    match = ROUND_FILE.search(Path(path).name)
    result = Round(int(match.group(1)) if match else -1, [], None)
    for number, row in list(jsonl_objects(path, on_problem)):
        kind = row.get("type")
        if kind == "summary":
            if not isinstance(row.get("languages"), dict):
                problem(on_problem, path, number, "summary line without a 'languages' mapping")
                continue
            result.summary = row
        elif kind == "candidate":
            if "lang" not in row:
                problem(on_problem, path, number, "candidate line without 'lang'")
                continue
            result.candidates.append(row)
        else:
            problem(on_problem, path, number, f"unknown line type {kind!r}")
    return result


def read_rounds(out_dir: str | Path, on_problem: OnProblem | None = None) -> list[Round]:
    """Every round file of the run in `out_dir`, by round index ([] when there is none)."""
    folder = Path(out_dir) / SELECTION_DIR
    paths = sorted(folder.glob("round-*.jsonl")) if folder.is_dir() else []
    return sorted((read_round(p, on_problem) for p in paths), key=lambda r: r.index)
