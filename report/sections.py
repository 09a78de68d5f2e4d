"""One function per report section: read the stage's files, draw its figures, return HTML.

Each section renders from whatever files exist and says "not run yet: <path>" for the rest, so
the report works at any point of the chain. `Layout` is the single place naming the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from report import figures, readers
from report.html import FigureSink, Raw, details, error_box, join, not_run, num, para, pct, pre, table
from report.readers import Problems


@dataclass
class Layout:
    """Where each stage writes (docs/interfaces.md)."""

    out_dir: Path
    tokenizer: Path | None = None

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            self.tokenizer = self.out_dir / "tokenizer" / "tiny"

    @property
    def corpus(self) -> Path:
        return self.out_dir / "corpus"

    def pretrain(self, run: str) -> Path:
        return self.out_dir / "pretrain" / run

    def finetune(self, run: str) -> Path:
        return self.out_dir / "finetune" / run

    def discover_runs(self) -> list[str]:
        names = set()
        for parent in (self.out_dir / "pretrain", self.out_dir / "finetune"):
            if parent.is_dir():
                names |= {p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")}
        return sorted(names)

    def input_files(self, runs: list[str]) -> list[Path]:
        """Every file the report may read (for the manifest's input hashes)."""
        files = [
            self.corpus / "stats.json",
            self.corpus / "manifest.json",
            self.corpus / "contamination.json",
            self.tokenizer / "report.json",
            self.tokenizer / "manifest.json",
        ]
        files += sorted((self.corpus / "rejected").glob("*.jsonl"))
        for run in runs:
            p, f = self.pretrain(run), self.finetune(run)
            files += [
                p / "metrics.jsonl",
                p / "timing.jsonl",
                p / "config.yaml",
                p / "manifest.json",
                f / "results.csv",
                f / "manifest.json",
            ]
            files += sorted((p / "selection").glob("round-*.jsonl"))
        return files


@dataclass
class Context:
    layout: Layout
    runs: list[str]
    problems: Problems
    sink: FigureSink
    samples_per_reason: int = 5
    score_rounds: int = 6


def guarded(render):
    """A section whose input is malformed shows the error (and stderr names it), the rest of
    the report still renders."""

    def wrapper(ctx: Context, *args) -> Raw:
        try:
            return render(ctx, *args)
        except readers.InputError as err:
            ctx.problems.add(str(err))
            return error_box(str(err))

    wrapper.__name__ = render.__name__
    return wrapper


def _manifest_line(path: Path, keys: tuple[str, ...]) -> Raw:
    manifest = readers.read_manifest(path)
    if manifest is None:
        return para(f"No manifest at {path}: the stage did not finish (or is still running).", "missing")
    parts = [f"finished {manifest.get('created', '?')}"]
    for key in keys:
        if key in manifest:
            value = manifest[key]
            parts.append(f"{key} {value[:12] if isinstance(value, str) else value}")
    return para("; ".join(parts), "meta")


# ------------------------------------------------------------------------- corpus


@guarded
def corpus_section(ctx: Context) -> Raw:
    path = ctx.layout.corpus / "stats.json"
    stats = readers.read_corpus_stats(path)
    if stats is None:
        return not_run("corpus stage: make corpus", path)
    langs = sorted(stats["languages"])
    entries = {lang: stats["languages"][lang] for lang in langs}
    total = _totals(entries)
    summary = [
        [
            lang,
            e["read"],
            e["kept"],
            e.get("train", "-"),
            e.get("valid", "-"),
            e["dropped"],
            pct(e["kept"], e["read"]),
            num(e.get("kept_bytes", 0) / 1e6),
        ]
        for lang, e in entries.items()
    ]
    summary.append(
        [
            "total",
            total["read"],
            total["kept"],
            total["train"],
            total["valid"],
            total["dropped"],
            pct(total["kept"], total["read"]),
            num(total["kept_bytes"] / 1e6),
        ]
    )
    reasons = sorted({r for e in entries.values() for r in e.get("dropped_by_reason", {})})
    by_reason = [[lang] + [e.get("dropped_by_reason", {}).get(r, 0) for r in reasons] for lang, e in entries.items()]
    by_reason.append(
        ["total"] + [sum(e.get("dropped_by_reason", {}).get(r, 0) for e in entries.values()) for r in reasons]
    )
    parts = [
        _manifest_line(ctx.layout.corpus / "manifest.json", ("corpus_hash", "seconds")),
        para("Unit: text lines after splitting; for every language read = kept + dropped."),
        table(
            ["language", "read", "kept", "train", "valid", "dropped", "kept %", "kept MB"],
            [[c if isinstance(c, str) else num(c) for c in row] for row in summary],
        ),
        ctx.sink.add(
            "corpus_kept_dropped",
            figures.corpus_outcomes(stats),
            "Corpus lines kept and dropped per language, by reason",
        ),
        Raw("<h3>Dropped lines by reason</h3>"),
        table(["language", *reasons], [[row[0], *map(num, row[1:])] for row in by_reason]),
        details("Per source", _sources_table(entries)),
        _rejected_samples(ctx),
    ]
    return join(parts)


def _totals(entries: dict) -> dict:
    keys = ("read", "kept", "train", "valid", "dropped", "kept_bytes")
    return {k: sum(e.get(k, 0) for e in entries.values()) for k in keys}


def _sources_table(entries: dict) -> Raw:
    rows = []
    for lang, e in entries.items():
        for source, s in sorted(e.get("sources", {}).items()):
            reasons = sorted(s.get("dropped_by_reason", {}).items(), key=lambda kv: -kv[1])[:3]
            rows.append(
                [
                    lang,
                    source,
                    num(s.get("read")),
                    num(s.get("kept")),
                    num(s.get("dropped")),
                    pct(s.get("kept", 0), s.get("read", 0)),
                    ", ".join(f"{r} {n:,}" for r, n in reasons),
                ]
            )
    if not rows:
        return para("stats.json has no per-source counts.")
    return table(["language", "source", "read", "kept", "dropped", "kept %", "top drop reasons"], rows, numeric_from=2)


def _rejected_samples(ctx: Context) -> Raw:
    folder = ctx.layout.corpus / "rejected"
    samples = readers.read_rejected_samples(folder, ctx.samples_per_reason, ctx.problems)
    if samples is None:
        return not_run("rejected-line samples", folder)
    blocks = [
        Raw("<h3>Samples of rejected lines</h3>"),
        para(f"The first {ctx.samples_per_reason} samples per reason from {folder}/<reason>.jsonl."),
    ]
    for reason, rows in samples.items():
        body = table(
            ["source", "lang", "where", "detail", "text"],
            [
                [
                    r.get("source", ""),
                    r.get("lang", ""),
                    f"{r.get('path', '')}:{r.get('line_no', '')}",
                    r.get("detail", ""),
                    r.get("text", ""),
                ]
                for r in rows
            ],
            numeric_from=99,
        )
        blocks.append(details(f"{reason} ({len(rows)} shown)", body))
    return join(blocks)


@guarded
def decontamination_section(ctx: Context) -> Raw:
    path = ctx.layout.corpus / "stats.json"
    stats = readers.read_corpus_stats(path)
    if stats is None:
        return not_run("corpus stage: make corpus", path)
    decontam = stats.get("decontamination", {})
    if not any(n for sets in decontam.values() for n in sets.values()):
        return para(
            "No corpus line overlapped a dev/test item of the evaluation sets "
            "(or decontamination was turned off: decontam.enabled)."
        )
    sets = sorted({s for per in decontam.values() for s in per})
    rows = [
        [source, *[num(per.get(s, 0)) for s in sets], num(sum(per.values()))]
        for source, per in sorted(decontam.items())
    ]
    rows.append(
        [
            "total",
            *[num(sum(per.get(s, 0) for per in decontam.values())) for s in sets],
            num(sum(n for per in decontam.values() for n in per.values())),
        ]
    )
    per_lang = {lang: e.get("decontaminated_by_eval_set", {}) for lang, e in sorted(stats["languages"].items())}
    by_lang = [
        [lang, *[num(counts.get(s, 0)) for s in sets], num(sum(counts.values()))]
        for lang, counts in per_lang.items()
        if sum(counts.values())
    ]
    clean = [lang for lang, counts in per_lang.items() if not sum(counts.values())]
    return join(
        [
            para(
                "Corpus lines dropped because they overlap a dev or test item (8 folded words, a "
                "whole short item, or letters that line up with an item despite elision and "
                "re-spacing: pipeline/decontam.py), by source and evaluation set."
            ),
            table(["source", *sets, "total"], rows),
            Raw("<h3>By language</h3>"),
            table(["language", *sets, "total"], by_lang),
            para(f"No line dropped for: {', '.join(clean)}.") if clean else "",
        ]
    )


@guarded
def contamination_section(ctx: Context) -> Raw:
    path = ctx.layout.corpus / "contamination.json"
    audit = readers.read_contamination(path)
    if audit is None:  # an optional check, not a stage of `make all`
        return para(
            f"No audit in {path}: `make contamination` checks the corpus against every dev and "
            "test item of every registered evaluation set (a few minutes on the shared data)."
        )
    total = audit["total"]
    rows = [
        [r["set"], r["lang"], num(r["items"]), num(r["exact"]), num(r["folded"])]
        for r in audit["rows"]
        if r["exact"] or r["folded"]
    ]
    blocks = [
        para(
            f"{num(audit['corpus_lines'])} corpus lines checked against {num(total['items'])} dev/test "
            f"items: {num(total['exact'])} items overlap under the exact key (marks kept), "
            f"{num(total['folded'])} under the folded key the corpus stage removes with "
            "(marks, hooked letters and apostrophes folded, letters check against elision)."
        ),
        table(["set", "lang", "items", "exact", "folded"], rows)
        if rows
        else para("No item of any registered set overlaps the corpus under either key."),
    ]
    for eval_set, pairs in audit["samples"].items():
        body = table(
            ["key", "lang", "eval item", "corpus line", "source"],
            [
                [f"{p['key']} ({p['how']})", p["lang"], f"{p['item']} ({p['item_where']})", p["line"], p["source"]]
                for p in pairs
            ],
            numeric_from=99,
        )
        blocks.append(details(f"{eval_set}: sample pairs ({len(pairs)})", body))
    return join(blocks)


# ------------------------------------------------------------------------- tokenizer


@guarded
def tokenizer_section(ctx: Context) -> Raw:
    path = ctx.layout.tokenizer / "report.json"
    report = readers.read_tokenizer_report(path)
    if report is None:
        return not_run("tokenizer stage: make tokenizer", path)
    rows = []
    for lang, r in sorted(report["languages"].items()):
        rows.append(
            [
                lang,
                num(r.get("lines")),
                num(r.get("fertility"), 3),
                num(r.get("chars_per_token"), 2),
                _rate(r.get("unk_rate")),
                _rate(r.get("byte_rate")),
                num(r.get("roundtrip_errors")),
                _rate(r.get("sample_share"), 2),
                num(r.get("repeat_factor"), 2),
            ]
        )
    parts = [
        _manifest_line(ctx.layout.tokenizer / "manifest.json", ("tokenizer_hash",)),
        para(f"Vocabulary: {num(report.get('vocab_size'))} ids. Measured on held-out valid lines."),
        table(
            [
                "language",
                "valid lines",
                "fertility",
                "chars/token",
                "<unk> %",
                "byte-fallback %",
                "round-trip errors",
                "sample share %",
                "repeat",
            ],
            rows,
        ),
        ctx.sink.add(
            "tokenizer_fertility",
            figures.tokenizer_metrics(report),
            "Tokenizer fertility, byte-fallback and <unk> rates per language",
        ),
    ]
    if report.get("languages_without_valid_lines"):
        parts.append(para("Not measured (no valid lines): " + ", ".join(report["languages_without_valid_lines"])))
    return join(parts)


def _rate(value, digits: int = 3) -> str:
    return "-" if value is None else f"{100.0 * value:.{digits}f}"


# ------------------------------------------------------------------------- pretraining


@guarded
def pretrain_run(ctx: Context, run: str) -> Raw:
    folder = ctx.layout.pretrain(run)
    metrics = readers.read_metrics(folder / "metrics.jsonl", ctx.problems)
    if metrics is None:
        return not_run(f"pretraining: make pretrain (run {run})", folder / "metrics.jsonl")
    config = readers.read_yaml(folder / "config.yaml") or {}
    parts = [_manifest_line(folder / "manifest.json", ())]
    manifest = readers.read_manifest(folder / "manifest.json") or {}
    summary = manifest.get("summary", {})
    last = metrics.train[-1] if metrics.train else {}
    facts = [
        ("strategy", _get(config, "selection.strategy"), 0),
        ("steps", last.get("step"), 0),
        ("tokens", last.get("tokens"), 0),
        ("last train loss", last.get("loss"), 4),
        ("skipped steps", last.get("skipped_steps"), 0),
        ("parameters", summary.get("parameters"), 0),
        ("train seconds", summary.get("train_seconds"), 1),
        ("scoring seconds", summary.get("scoring_seconds"), 1),
    ]
    parts.append(table(["", "value"], [[k, num(v, digits)] for k, v, digits in facts if v is not None]))
    if metrics.train or metrics.evals:
        parts.append(
            ctx.sink.add(
                f"loss_{run}", figures.loss_curves(metrics), f"{run}: training loss and validation loss per language"
            )
        )
    parts.append(_valid_table(metrics))
    if metrics.warnings:
        parts.append(
            details(
                f"{len(metrics.warnings)} warning(s) in metrics.jsonl",
                table(
                    ["step", "message"], [[w.get("step", ""), w["message"]] for w in metrics.warnings], numeric_from=99
                ),
            )
        )
    if config:
        parts.append(
            details("Resolved config (config.yaml)", pre(yaml.safe_dump(config, sort_keys=False, allow_unicode=True)))
        )
    return join(parts)


def _get(config: dict, dotted: str):
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def final_valid(metrics: readers.Metrics) -> dict[str, tuple[float | None, float | None, float | None]]:
    """lang -> (first loss, last loss, last perplexity) over the eval lines."""
    out = {}
    for lang in sorted({lang for e in metrics.evals for lang in e["langs"]}):
        points = [
            e["langs"][lang]
            for e in metrics.evals
            if isinstance(e["langs"].get(lang), dict) and e["langs"][lang].get("loss") is not None
        ]
        if points:
            out[lang] = (points[0]["loss"], points[-1]["loss"], points[-1].get("ppl"))
        else:
            out[lang] = (None, None, None)
    return out


def _valid_table(metrics: readers.Metrics) -> Raw:
    if not metrics.evals:
        return para("No validation line in metrics.jsonl yet.")
    last = metrics.evals[-1]["langs"]
    rows = []
    for lang, (first, final, ppl) in final_valid(metrics).items():
        base = metrics.baseline.get(lang) or {}
        mine = last.get(lang) if isinstance(last.get(lang), dict) else {}
        margin = None if final is None or base.get("loss") is None else base["loss"] - final
        rows.append(
            [
                lang,
                num(first, 4),
                num(final, 4),
                num(base.get("loss"), 4),
                num(margin, 4),
                num(mine.get("bpc"), 3),
                num(base.get("bpc"), 3),
                num(ppl, 2),
            ]
        )
    parts = []
    margins = figures.final_margins(metrics)
    if margins:
        below = sum(m > 0 for m in margins.values())
        mean = sum(margins.values()) / len(margins)
        parts.append(
            para(
                f"Final validation loss is below the per-language unigram baseline in {below} of "
                f"{len(margins)} languages; mean margin {mean:+.3f} nats per masked token "
                "(unigram: piece frequencies of that language's training text, same tokenizer, "
                "scored on the same fixed masked positions)."
            )
        )
    parts.append(
        table(
            [
                "language",
                "first valid loss",
                "last valid loss",
                "unigram loss",
                "margin",
                "bits/char",
                "unigram bits/char",
                "last perplexity",
            ],
            rows,
        )
    )
    return join(parts)


# ------------------------------------------------------------------------- selection


@guarded
def selection_run(ctx: Context, run: str) -> Raw:
    folder = ctx.layout.pretrain(run)
    rounds = readers.read_selection_rounds(folder / "selection", ctx.problems) or []
    source = f"{folder / 'selection'}/round-NNN.jsonl"
    if not any(r.summary for r in rounds):
        # No round file with a summary line: the summaries in metrics.jsonl still give shares.
        metrics = readers.read_metrics(folder / "metrics.jsonl", ctx.problems)
        from_metrics = readers.rounds_from_metrics(metrics.selections if metrics else [])
        if not from_metrics and not rounds:
            return not_run(f"selection rounds (run {run})", folder / "selection" / "round-000.jsonl")
        scored = {r.index: r for r in rounds}
        rounds = [
            readers.Round(r.index, r.summary, scored.get(r.index, r).scores, scored.get(r.index, r).chosen_scores)
            for r in from_metrics
        ] or rounds
        source = f"{folder / 'metrics.jsonl'} (selection events: the round files have no summary line)"
    parts = [para(f"{len(rounds)} round(s) from {source}.", "meta")]
    index, shares = readers.selection_shares(rounds)
    if index:
        parts.append(
            ctx.sink.add(
                f"selection_share_{run}",
                figures.selection_share(index, shares),
                f"{run}: share of each language among the chosen blocks per round",
            )
        )
        parts.append(_round_table(rounds, shares, index))
    picked = figures.pick_rounds(rounds, ctx.score_rounds)
    if picked:
        parts.append(
            ctx.sink.add(
                f"selection_scores_{run}",
                figures.score_distributions(picked),
                f"{run}: score distributions per language, rounds " + ", ".join(str(r.index) for r in picked),
            )
        )
    else:
        modes = sorted({r.summary["mode"] for r in rounds if r.summary and r.summary.get("mode")})
        parts.append(
            para(
                f"No candidate scores (round modes: {', '.join(modes) or 'not recorded'}): "
                "random, warm-up and afrolm rounds choose without scoring, and only the round "
                "files hold scores."
            )
        )
    parts.append(_scoring_time(ctx, run))
    return join(parts)


def _round_table(rounds: list[readers.Round], shares: dict[str, list[float]], index: list[int]) -> Raw:
    langs = sorted(shares)
    by_round = {r.index: r.summary for r in rounds if r.summary}
    rows = []
    for i, round_index in enumerate(index):
        s = by_round[round_index]
        rows.append(
            [
                round_index,
                s.get("mode", ""),
                num(s.get("chosen")),
                num(s.get("candidates")),
                num(s.get("shortfall")),
                num(s.get("junk_flagged")),
                num(s.get("junk_chosen")),
                *[f"{100 * shares[lang][i]:.1f}" for lang in langs],
            ]
        )
    body = table(
        [
            "round",
            "mode",
            "chosen",
            "candidates",
            "shortfall",
            "junk flagged",
            "junk chosen",
            *[f"{lang} %" for lang in langs],
        ],
        rows,
    )
    return (
        body if len(rows) <= 12 else details(f"Per round: chosen blocks and language shares ({len(rows)} rounds)", body)
    )


def _scoring_time(ctx: Context, run: str) -> Raw:
    path = ctx.layout.pretrain(run) / "timing.jsonl"
    timing = readers.read_timing(path, ctx.problems)
    if not timing:
        return not_run("scoring time share", path)
    last = timing[-1]
    share = pct(last["scoring_s"], last["elapsed_s"])
    return join(
        [
            para(
                f"Selection took {num(float(last['scoring_s']), 1)} s of {num(float(last['elapsed_s']), 1)} s "
                f"of training ({share}) up to step {last['step']}."
            ),
            ctx.sink.add(
                f"scoring_time_{run}",
                figures.scoring_time(timing),
                f"{run}: share of training time spent scoring and selecting",
            ),
        ]
    )


# ------------------------------------------------------------------------- downstream


@guarded
def downstream_run(ctx: Context, run: str) -> Raw:
    path = ctx.layout.finetune(run) / "results.csv"
    rows = readers.read_finetune_results(path, ctx.problems)
    if rows is None:
        return not_run(f"finetuning: make finetune (run {run})", path)
    if not rows:
        return para(f"{path} has no result rows yet.")
    summary = readers.summarise_results(rows, task_averages=True)
    table_rows = [
        [
            r["task"],
            r["lang"],
            r["model"],
            r["metric"],
            r["seeds"],
            f"{r['mean']:.2f}" + ("" if r["std"] is None else f" ± {r['std']:.2f}"),
        ]
        for r in sorted(summary, key=lambda r: (r["task"], r["model"], r["lang"] == "avg", r["lang"]))
    ]
    return join(
        [
            _manifest_line(ctx.layout.finetune(run) / "manifest.json", ("runs", "seconds")),
            para(f"{len(rows)} finetuning runs; test score (%) at the best dev epoch, mean ± sample std over seeds."),
            table(["task", "language", "model", "metric", "seeds", "test (mean ± std)"], table_rows, numeric_from=4),
            ctx.sink.add(
                f"downstream_{run}",
                figures.downstream_bars([r for r in summary if r["lang"] != "avg"]),
                f"{run}: downstream test scores, mean ± std over seeds",
            ),
        ]
    )


# ------------------------------------------------------------------------- several runs


@guarded
def comparison_section(ctx: Context) -> Raw:
    """Runs side by side: last validation loss per language and downstream means."""
    valid: dict[str, dict] = {}
    down: list[dict] = []
    for run in ctx.runs:
        metrics = readers.read_metrics(ctx.layout.pretrain(run) / "metrics.jsonl", Problems(_Null()))
        if metrics:
            valid[run] = final_valid(metrics)
        results = readers.read_finetune_results(ctx.layout.finetune(run) / "results.csv", Problems(_Null()))
        for row in readers.summarise_results(results or []):
            down.append(dict(row, run=run if len({r["model"] for r in results}) == 1 else f"{run}: {row['model']}"))
    parts = []
    if valid:
        langs = sorted({lang for per in valid.values() for lang in per})
        rows = [[lang, *[num(valid[run].get(lang, (None, None, None))[1], 4) for run in valid]] for lang in langs]
        parts += [Raw("<h3>Last validation loss per language</h3>"), table(["language", *valid], rows)]
    if down:
        groups = sorted({r["run"] for r in down})
        index = {(r["task"], r["lang"], r["run"]): r for r in down}
        cells = sorted({(r["task"], r["lang"]) for r in down})
        rows = [[task, lang, *[_mean_std(index.get((task, lang, g))) for g in groups]] for task, lang in cells]
        parts += [
            Raw("<h3>Downstream test score (%), mean ± std over seeds</h3>"),
            table(["task", "language", *groups], rows, numeric_from=2),
            ctx.sink.add(
                "downstream_comparison",
                figures.downstream_bars(down, group_key="run"),
                "Downstream results of the runs side by side",
            ),
        ]
    return join(parts) if parts else para("None of the runs has validation or downstream results yet.")


def _mean_std(row: dict | None) -> str:
    return "-" if row is None else f"{row['mean']:.2f} ± {row['std']:.2f}"


class _Null:
    """The per-run sections already reported these files' problems once."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
