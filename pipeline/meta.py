"""The run's bookkeeping (summed counts, rejected samples, shard list) as the graph's one sink.

Beam's DaskRunner (2.77) computes only the Dask bag of the last transform applied, trusting it to
depend on everything else; a graph with three `WriteToText` sinks would run only the last one.
Its side inputs (which `WriteToText` uses) are recomputed inside the task that reads them.
So every bookkeeping record goes through one GroupByKey to a single writer, the last step of
the graph, which writes `_meta/<name>` (one JSON value a line, sorted, so the files do not
depend on the runner) with FileSystems. The records are small: sums per key, at most
`rejected_samples` rows per reason, one row per shard.
"""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

META_NAMES = ("counts", "samples", "shards")


def _to_line(name: str):
    def keyed(value):
        return "meta", (name, json.dumps(value, ensure_ascii=False, sort_keys=True))

    return keyed


class WriteMetaFiles(beam.DoFn):
    """("meta", [(name, json line)]) -> writes `meta_dir/<name>` for every name in META_NAMES."""

    def __init__(self, meta_dir: str):
        self.meta_dir = meta_dir

    def process(self, item):
        _, rows = item
        by_name: dict[str, list[str]] = {name: [] for name in META_NAMES}
        for name, line in rows:
            if line is not None:
                by_name[name].append(line)
        for name, lines in by_name.items():
            with FileSystems.create(FileSystems.join(self.meta_dir, name)) as handle:
                handle.write("".join(f"{line}\n" for line in sorted(lines)).encode("utf-8"))
        yield len(by_name)


class WriteMeta(beam.PTransform):
    """{name: PCollection} -> `meta_dir/<name>` files, written by one task after everything else."""

    def __init__(self, meta_dir: str):
        super().__init__()
        self.meta_dir = meta_dir

    def expand(self, pcolls: dict):
        # One placeholder per name: the writer runs, and writes every file, even when all are empty.
        names = pcolls["counts"].pipeline | "MetaNames" >> beam.Create([("meta", (n, None)) for n in META_NAMES])
        keyed = [pcoll | f"Key_{name}" >> beam.Map(_to_line(name)) for name, pcoll in pcolls.items()]
        return (
            (names, *keyed)
            | "AllMeta" >> beam.Flatten()
            | "OneWriter" >> beam.GroupByKey()
            | "WriteMetaFiles" >> beam.ParDo(WriteMetaFiles(self.meta_dir))
        )
