"""The whole report from a fake run folder in every stage's real format (tests/support/report.py)."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import statistics

import pytest

from report import build as build_mod
from report.build import build, main
from report.config import ReportConfig
from tests.support.report import PLANTED, write_corpus, write_fake_run, write_pretrain

HEADINGS = (
    "Overview",
    "Corpus: lines kept and dropped",
    "Decontamination",
    "Tokenizer: fertility per language",
    "Pretraining: loss curves",
    "Selection: what each round chose",
    "Downstream results",
)


def make(out, **kw) -> str:
    cfg = ReportConfig(out_dir=out, dpi=40, **kw)
    return build(cfg).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = write_fake_run(tmp_path_factory.mktemp("run") / "out", runs=("tiny-loss", "tiny-random"))
    return out, make(out, run=["tiny-loss", "tiny-random"])


def test_every_section_and_its_numbers(full):
    out, text = full
    for heading in HEADINGS + ("Comparison of runs",):
        assert f"<h2>{html.escape(heading)}</h2>" in text
    stats = json.loads((out / "corpus" / "stats.json").read_text(encoding="utf-8"))
    yor = stats["languages"]["yor"]
    assert f"<td class=num>{yor['kept']:,}</td>" in text
    assert f"<td class=num>{yor['dropped_by_reason']['near_dup']:,}</td>" in text
    decontam = stats["decontamination"]["bible_yor"]
    assert f"<td class=num>{sum(decontam.values()):,}</td>" in text
    fertility = json.loads((out / "tokenizer" / "tiny" / "report.json").read_text())["languages"]["hau"]["fertility"]
    assert f"<td class=num>{fertility:.3f}</td>" in text
    assert "not run yet" not in text


def test_downstream_mean_std_from_results(full):
    out, text = full
    rows = [line.split(",") for line in (out / "finetune" / "tiny-loss" / "results.csv").read_text().splitlines()[1:]]
    scores = [float(r[6]) for r in rows if r[0] == "masakhaner2" and r[1] == "hau"]
    expected = f"{statistics.fmean(scores):.2f} ± {statistics.stdev(scores):.2f}"
    assert expected in text


def test_figures_embedded_and_written(full):
    out, text = full
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    pngs = sorted((out / "report" / "figures").glob("*.png"))
    # corpus, tokenizer, then per run: loss, share, scoring time, downstream; scores (loss run only); comparison
    assert len(uris) == len(pngs) == 2 + 2 * 4 + 1 + 1
    embedded = {base64.b64decode(u) for u in uris}
    assert {p.read_bytes() for p in pngs} == embedded
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in embedded)
    manifest = json.loads((out / "report" / "manifest.json").read_text())
    assert "report.html" in manifest["outputs"] and manifest["problems"] == []


def test_planted_script_is_escaped(full):
    _, text = full
    assert PLANTED not in text
    assert "<script>" not in text
    assert html.escape(PLANTED) in text  # shown as text, Yoruba tone marks intact


def test_rebuild_is_skipped_until_an_input_changes(full, capsys):
    out, _ = full
    before = (out / "report" / "report.html").stat().st_mtime_ns
    make(out, run=["tiny-loss", "tiny-random"])
    assert "skipped" in capsys.readouterr().out
    assert (out / "report" / "report.html").stat().st_mtime_ns == before
    # a new finetune row changes an input hash -> rebuilt
    results = out / "finetune" / "tiny-random" / "results.csv"
    last = results.read_text().splitlines()[-1].split(",")
    last[3], last[6] = "9", "12.5"
    results.write_text(results.read_text() + ",".join(last) + "\n")
    text = make(out, run=["tiny-loss", "tiny-random"])
    assert "skipped" not in capsys.readouterr().out
    assert re.search(r"<td class=num>4</td><td class=num>[0-9.]+ ± [0-9.]+</td>", text)  # 4 seeds now


def test_nothing_run_yet(tmp_path):
    text = make(tmp_path / "out")
    for heading in HEADINGS:
        assert f"<h2>{html.escape(heading)}</h2>" in text
    assert f"not run yet: <code>{tmp_path / 'out' / 'corpus' / 'stats.json'}</code>" in text
    assert f"not run yet: <code>{tmp_path / 'out' / 'tokenizer' / 'tiny' / 'report.json'}</code>" in text
    assert html.escape(str(tmp_path / "out" / "pretrain" / "<preset>-<strategy>" / "metrics.jsonl")) in text
    assert "data:image/png" not in text


def test_partial_chain_corpus_and_pretrain_only(tmp_path):
    out = tmp_path / "out"
    write_corpus(out)
    write_pretrain(out, "tiny-loss")
    text = make(out, run="tiny-loss")
    assert f"not run yet: <code>{out / 'tokenizer' / 'tiny' / 'report.json'}</code>" in text
    assert f"not run yet: <code>{out / 'finetune' / 'tiny-loss' / 'results.csv'}</code>" in text
    assert "figures/loss_tiny-loss.png" in text and "figures/corpus_kept_dropped.png" in text


def test_malformed_inputs_are_named_in_report_and_stderr(tmp_path, capsys):
    out = tmp_path / "out"
    write_corpus(out)
    folder = write_pretrain(out, "tiny-loss")
    with (folder / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"event": "train", "step": 99, "loss": 1.0, "tok')  # torn last line (killed run)
    n_lines = len((folder / "metrics.jsonl").read_text().splitlines())
    (out / "tokenizer" / "tiny").mkdir(parents=True)
    (out / "tokenizer" / "tiny" / "report.json").write_text('{"vocab_size": 8000, "languages": [}', encoding="utf-8")
    text = make(out, run="tiny-loss")
    err = capsys.readouterr().err
    metrics_msg = f"{folder / 'metrics.jsonl'}:{n_lines}: not a JSON line"
    tokenizer_msg = f"{out / 'tokenizer' / 'tiny' / 'report.json'}:1: not valid JSON"
    for msg in (metrics_msg, tokenizer_msg):
        assert msg in err
        assert html.escape(msg) in text
    assert "figures/loss_tiny-loss.png" in text  # the good lines still make the curve
    assert "2 problem(s) with the input files" in text


def test_cli_help_and_bad_setting(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "samples_per_reason" in capsys.readouterr().out
    assert main(["colour=blue"]) == 2
    assert "unknown setting(s) colour" in capsys.readouterr().err
    assert main(["dpi=0"]) == 2


def test_run_setting_accepts_comma_list():
    assert ReportConfig(run="tiny-loss,tiny-random").run == ["tiny-loss", "tiny-random"]
    with pytest.raises(ValueError, match="run"):
        ReportConfig(run=["../etc"])
    cfg, _ = build_mod.COMMAND.read(["run=tiny-loss", "out_dir=/x"])
    assert cfg.run == ["tiny-loss"] and str(cfg.report_dir) == "/x/report"


def test_selection_falls_back_to_metrics_events(tmp_path):
    out = tmp_path / "out"
    folder = write_pretrain(out, "tiny-loss")
    shutil.rmtree(folder / "selection")
    text = make(out, run="tiny-loss")
    assert "selection events: the round files have no summary line" in text
    assert "figures/selection_share_tiny-loss.png" in text
    assert "figures/selection_scores_tiny-loss.png" not in text  # scores live only in round files


def test_validation_is_shown_against_the_unigram_baseline(full):
    out, text = full
    records = [json.loads(line) for line in (out / "pretrain" / "tiny-loss" / "metrics.jsonl").read_text().splitlines()]
    baseline = next(r for r in records if r["event"] == "baseline")["langs"]
    last = [r for r in records if r["event"] == "eval"][-1]["langs"]
    margins = {lang: baseline[lang]["loss"] - last[lang]["loss"] for lang in last}
    below = sum(m > 0 for m in margins.values())
    mean = statistics.fmean(margins.values())
    assert (
        f"below the per-language unigram baseline in {below} of {len(margins)} languages; mean margin {mean:+.3f} nats"
    ) in text
    for lang, margin in margins.items():
        assert f"<td class=num>{baseline[lang]['loss']:.4f}</td><td class=num>{margin:.4f}</td>" in text, lang
