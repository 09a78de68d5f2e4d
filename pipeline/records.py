"""The one record of the corpus pipeline, from the reader to the shard writer.

Readers (pipeline/readers/) turn one catalog entry's file into `Line`s; the steps
(pipeline/steps.py) pass each on, cut it into units, or drop it: a dropped line is the same
record with `reason` set (and `detail`), so nothing is ever dropped silently and for every source
and language: read = kept + dropped.

Between Beam stages lines travel packed, many to one compressed bytes object (`pack`): Beam's
coders handle plain tuples fast but pickle a NamedTuple one element at a time.
"""

from __future__ import annotations

import pickle
import zlib
from typing import NamedTuple


class Line(NamedTuple):
    source: str  # catalog entry name
    lang: str  # ISO 639-3 code from the catalog
    path: str  # file it came from (plus "::member" inside an archive), below data_dir
    line_no: int  # 1-based unit number within that file
    # The text; None from a reader that could not read the unit (then `detail` shows the raw
    # bytes, and the read step makes that the text the stats count and the samples show).
    text: str | None
    reason: str | None = None  # why the line was dropped (a short stable key); None while kept
    detail: str = ""  # e.g. the eval set a decontaminated line matched, the surviving copy
    key: str = ""  # textkey.dedup_key(text), set once cleaning is done

    def drop(self, reason: str, detail: str = "") -> "Line":
        return self._replace(reason=reason, detail=detail)


def order_key(line: Line) -> tuple:
    """The deterministic order in which copies compete (smallest survives) and shards are sorted."""
    return line.source, line.path, line.line_no, line.text


def pack(lines: list[Line]) -> bytes:
    """Lines as one compressed bytes object, for the shuffles between steps.

    Beam's local runners keep every element of a shuffle (a Reshuffle, a GroupByKey) in the
    runner process, decoded: one small bytes object per batch there instead of thousands of
    tuples keeps that memory to about the compressed size of the text (README, "Running at scale").
    """
    return zlib.compress(pickle.dumps([tuple(line) for line in lines], protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack(packed: bytes) -> list[Line]:
    return list(map(Line._make, pickle.loads(zlib.decompress(packed))))
