"""Beam counters of the production graph: lines read, kept and dropped by reason per language.

The steps add their per-batch sums (tally.Tally, in batches.CleanBatch, exact_dedup.DedupBucket
and language_shards.WriteLanguage) to counters in the `corpus` namespace, so a runner's UI shows the run's progress live:
`read:<lang>`, `kept:<lang>`, `dropped:<lang>:<reason>`. At the end pipeline.run reads them back
from the PipelineResult and checks them against stats.json, which stays the record: a runner
that retries a task may count it twice in attempted counters, and some runners (Beam's
DaskRunner) return no metrics at all.
"""

from __future__ import annotations

from collections import defaultdict

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "corpus"


def counter_name(key: tuple) -> str | None:
    """The counter for a stats count key (stats.py), or None for keys not counted live."""
    kind, lang = key[0], key[1]
    if kind in ("read", "kept"):
        return f"{kind}:{lang}"
    if kind == "dropped":
        return f"dropped:{lang}:{key[3]}"
    return None


def inc(key: tuple, count: int) -> None:
    name = counter_name(key)
    if name is not None:
        Metrics.counter(NAMESPACE, name).inc(count)


def expected_from_stats(stats: dict) -> dict[str, int]:
    """The counter values stats.json implies (zero counts have no counter)."""
    expected = {}
    for lang, entry in stats["languages"].items():
        expected[f"read:{lang}"] = entry["read"]
        expected[f"kept:{lang}"] = entry["kept"]
        for reason, n in entry["dropped_by_reason"].items():
            expected[f"dropped:{lang}:{reason}"] = n
    return {name: n for name, n in expected.items() if n}


def query_counters(result) -> dict[str, int] | None:
    """{counter name: value} summed over steps; None when the runner reports no metrics."""
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except (NotImplementedError, AttributeError):
        return None
    values: dict[str, int] = defaultdict(int)
    for metric in found:
        value = metric.committed if metric.committed is not None else metric.attempted
        values[metric.key.metric.name] += value or 0
    return dict(values)


def report(result, stats: dict) -> str:
    """One line saying whether the runner's counters equal stats.json, naming any that differ."""
    counters = query_counters(result)
    runner = type(result).__name__
    if counters is None:
        return f"counters: the runner ({runner}) returns no metrics; stats.json holds the counts"
    expected = expected_from_stats(stats)
    counters = {name: n for name, n in counters.items() if n}
    if counters == expected:
        total = sum(n for name, n in counters.items() if name.startswith("read:"))
        return f"counters: {len(counters)} runner counters equal stats.json ({total} lines read)"
    diff = sorted(
        f"{name} {counters.get(name, 0)} != {expected.get(name, 0)}"
        for name in set(counters) | set(expected)
        if counters.get(name, 0) != expected.get(name, 0)
    )
    return f"counters: WARNING: runner counters differ from stats.json: {'; '.join(diff)}"
