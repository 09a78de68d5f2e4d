"""Multi-output steps as single-output ParDos, so one graph runs on every Beam runner.

Beam's DaskRunner (2.77) puts every output of a ParDo, main and tagged, into one Dask bag and
hands that bag to each consumer: a step reading `clean.buckets` also receives the COUNTS and
SAMPLES elements (a TypeError in exact dedup's `unpack` on Dask). Here a DoFn that yields
`TaggedOutput`s runs inside `TagEach`, which yields every output as a plain `(tag, value)` pair,
and one small FlatMap per tag picks its own pairs back out. On the other runners this is the
same work: the pickers fuse with the step, and elements are batches, so the extra hop is cheap.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue


class TagEach(beam.DoFn):
    """Runs `fn` and yields each output as (tag, value); main outputs get the tag `main`."""

    def __init__(self, fn: beam.DoFn, main: str):
        self.fn = fn
        self.main = main

    def setup(self):
        self.fn.setup()

    def process(self, element):
        for out in self.fn.process(element) or ():
            if isinstance(out, pvalue.TaggedOutput):
                yield out.tag, out.value
            else:
                yield self.main, out

    def teardown(self):
        self.fn.teardown()


def _values_of(pair, tag: str):
    if pair[0] == tag:
        yield pair[1]


class ParDoByTag(beam.PTransform):
    """`ParDo(fn).with_outputs(*tags, main=main)` built from single-output steps only: returns a
    dict {main: ..., tag: ...} of PCollections."""

    def __init__(self, fn: beam.DoFn, tags: tuple[str, ...], main: str):
        super().__init__()
        self.fn, self.tags, self.main = fn, tags, main

    def expand(self, pcoll):
        pairs = pcoll | "Run" >> beam.ParDo(TagEach(self.fn, self.main))
        return {tag: pairs | f"Pick_{tag}" >> beam.FlatMap(_values_of, tag) for tag in (self.main, *self.tags)}
