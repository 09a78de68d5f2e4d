"""Beam counters of the production graph (read, kept, dropped by reason per language) equal stats.json."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from common.config import load_config
from pipeline import counters
from pipeline.config import DEFAULT_CONFIG, CorpusConfig
from pipeline.decontam import plan_sources
from pipeline.run import build_pipeline, expand_tasks, run
from pipeline.stats import build_stats
from tests.support.pipeline import fake_sources, make_corpus, run_args  # noqa: F401  (fixture)

# The stage reads the stand-in catalog and reader of tests/support/pipeline.py.
pytestmark = pytest.mark.usefixtures("fake_sources")


def test_counters_of_the_production_graph_equal_its_stats(tmp_path):
    data, catalog = make_corpus(tmp_path)
    cfg = load_config(CorpusConfig, DEFAULT_CONFIG, [a for a in run_args(data, catalog, tmp_path / "out") if "=" in a])
    staging = tmp_path / "staging"
    p = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    build_pipeline(p, cfg, expand_tasks(cfg), str(staging), plan_sources(cfg).sources)
    result = p.run()
    result.wait_until_finish()
    rows = [json.loads(line) for line in (staging / "_meta" / "counts").read_text(encoding="utf-8").splitlines()]
    stats = build_stats([(tuple(k), tuple(v)) for k, v in rows])
    live = counters.query_counters(result)
    assert live == counters.expected_from_stats(stats)
    # Each step adds its own: cleaning (decode, filters, decontamination), exact and near dedup, kept.
    assert {
        "read:amh",
        "dropped:amh:decode",
        "dropped:hau:decontaminated",
        "dropped:yor:too_short",
        "dropped:yor:exact_dup",
        "dropped:yor:near_dup",
        "kept:yor",
    } <= set(live)
    assert sum(n for name, n in live.items() if name.startswith("read:")) == stats["total"]["read"]


def test_run_prints_that_counters_equal_stats(tmp_path, capsys):
    data, catalog = make_corpus(tmp_path)
    run(run_args(data, catalog, tmp_path / "out", "--runner=DirectRunner"))
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    printed = capsys.readouterr().out
    assert f"runner counters equal stats.json ({stats['total']['read']} lines read)" in printed


class _NoMetrics:
    def metrics(self):
        raise NotImplementedError("collecting metrics will come later!")  # as Beam's DaskRunnerResult


def test_a_runner_without_metrics_is_reported_not_fatal():
    stats = {"languages": {"yor": {"read": 3, "kept": 2, "dropped_by_reason": {"too_short": 1}}}}
    assert counters.query_counters(_NoMetrics()) is None
    assert "returns no metrics" in counters.report(_NoMetrics(), stats)


def test_a_counter_that_differs_is_named(monkeypatch):
    stats = {"languages": {"yor": {"read": 3, "kept": 2, "dropped_by_reason": {"too_short": 1}}}}
    assert counters.expected_from_stats(stats) == {"read:yor": 3, "kept:yor": 2, "dropped:yor:too_short": 1}
    monkeypatch.setattr(
        counters, "query_counters", lambda result: {"read:yor": 3, "kept:yor": 1, "dropped:yor:too_short": 1}
    )
    assert "kept:yor 1 != 2" in counters.report(object(), stats)
