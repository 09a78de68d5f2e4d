"""Build one self-contained HTML report of a pipeline run.

    python -m report.build [--preset NAME] [--config FILE] [key=value ...]
    python -m report.build out_dir=out run=tiny-loss              # what `make report` runs
    python -m report.build run=[tiny-loss,tiny-random]            # strategies side by side

Reads what each stage wrote under `out_dir` (corpus/stats.json and rejected/, tokenizer/report.json,
pretrain/<run>/metrics.jsonl, timing.jsonl, selection/round-NNN.jsonl, finetune/<run>/results.csv);
a stage that has not run yet is shown as "not run yet: <path>". Writes `<report_dir>/report.html`
(figures embedded as data: URIs, so the one file can be mailed around), the same figures as PNGs
in `<report_dir>/figures/`, `config.yaml` and `manifest.json` (last). Skips itself when the
manifest says the settings and every input file are unchanged.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from common.cli import Command
from common.config import config_to_dict
from common.io import manifest_is_current, sha256_file, write_manifest
from report import sections
from report.config import ReportConfig
from report.html import FigureSink, Raw, esc, join, not_run, page, para, table, write_public
from report.readers import Problems

PRESETS = Path(__file__).resolve().parent / "presets"
HTML_NAME = "report.html"


COMMAND = Command(ReportConfig, "python -m report.build", __doc__, presets=PRESETS, default_preset="default")


def input_hashes(files: list[Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) if p.is_file() else "missing" for p in files}


def content_config(cfg: ReportConfig) -> dict:
    """Settings that change the report (not `force`, not where it is written)."""
    return {k: v for k, v in config_to_dict(cfg).items() if k not in ("force", "report_dir")}


def build(cfg: ReportConfig, stream=None) -> Path:
    """Write the report; returns the HTML path (also when skipped)."""
    layout = sections.Layout(Path(cfg.out_dir), Path(cfg.tokenizer_dir))
    runs = list(cfg.run) or layout.discover_runs()
    report_dir = Path(cfg.report_dir)
    html_path = report_dir / HTML_NAME
    config = dict(content_config(cfg), runs=runs)
    inputs = input_hashes(layout.input_files(runs))
    if not cfg.force and html_path.exists() and manifest_is_current(report_dir, config, inputs):
        print(
            f"[report] {report_dir}/manifest.json is current (same settings and inputs); skipped "
            "(force=true to rebuild)"
        )
        return html_path
    started = time.time()
    problems = Problems(stream)
    sink = FigureSink(report_dir / "figures", cfg.dpi)
    ctx = sections.Context(layout, runs, problems, sink, cfg.samples_per_reason, cfg.score_rounds)
    body = [
        ("corpus", "Corpus: lines kept and dropped", sections.corpus_section(ctx)),
        ("decontamination", "Decontamination", sections.decontamination_section(ctx)),
        ("contamination", "Contamination audit", sections.contamination_section(ctx)),
        ("tokenizer", "Tokenizer: fertility per language", sections.tokenizer_section(ctx)),
        ("pretraining", "Pretraining: loss curves", _per_run(ctx, sections.pretrain_run, "metrics.jsonl")),
        (
            "selection",
            "Selection: what each round chose",
            _per_run(ctx, sections.selection_run, "selection/round-000.jsonl"),
        ),
        ("downstream", "Downstream results", _per_run(ctx, sections.downstream_run, "results.csv", finetune=True)),
    ]
    if len(runs) > 1:
        body.append(("comparison", "Comparison of runs", sections.comparison_section(ctx)))
    problems.finish()
    body.insert(0, ("overview", "Overview", _overview(layout, runs, problems)))
    meta = (
        f"out_dir {layout.out_dir.resolve()} · runs: {', '.join(runs) or 'none yet'} · "
        f"built {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
    write_public(html_path, page(cfg.title, meta, body))
    _remove_stale_figures(report_dir / "figures", sink.written)
    write_public(report_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True))
    write_manifest(
        report_dir,
        "report",
        config,
        inputs,
        [html_path, *sink.written, report_dir / "config.yaml"],
        extra={"problems": problems.items, "seconds": round(time.time() - started, 1)},
    )
    if problems.items:
        print(
            f"[report] {len(problems.items)} problem(s) with the inputs; listed at the top of the report",
            file=stream or sys.stderr,
        )
    print(html_path)
    return html_path


def _per_run(ctx: sections.Context, render, expected: str, finetune: bool = False) -> Raw:
    if not ctx.runs:
        where = ctx.layout.out_dir / ("finetune" if finetune else "pretrain") / "<preset>-<strategy>" / expected
        return not_run("no run folder yet", where)
    return join(Raw(f"<h3>{esc(run)}</h3>\n{render(ctx, run)}") for run in ctx.runs)


def _overview(layout: sections.Layout, runs: list[str], problems: Problems) -> Raw:
    stages = [("corpus", layout.corpus / "stats.json"), ("tokenizer", layout.tokenizer / "report.json")]
    for run in runs:
        stages += [
            (f"pretrain {run}", layout.pretrain(run) / "metrics.jsonl"),
            (f"finetune {run}", layout.finetune(run) / "results.csv"),
        ]
    rows = []
    for name, path in stages:
        done = (path.parent / "manifest.json").exists()
        state = "done" if done else ("in progress or interrupted (no manifest)" if path.exists() else "not run yet")
        rows.append([name, str(path), state])
    parts = [table(["stage", "output", "state"], rows, numeric_from=99)]
    if problems.items:
        items = "".join(f"<li><code>{esc(p)}</code></li>" for p in problems.items)
        parts.append(
            Raw(
                f'<div class="error"><strong>{len(problems.items)} problem(s) with the input files</strong>'
                f" (the affected lines were left out):<ul>{items}</ul></div>"
            )
        )
    else:
        parts.append(para("Every input file that exists was read without problems."))
    return join(parts)


def _remove_stale_figures(folder: Path, written: list[Path]) -> None:
    """Figures of an earlier build that this one did not draw (e.g. a run no longer shown)."""
    keep = set(written)
    for png in folder.glob("*.png"):
        if png not in keep:
            png.unlink()


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: build(cfg))


if __name__ == "__main__":
    sys.exit(main())
