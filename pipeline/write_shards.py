"""Step 10: write a language's lines as gzipped JSONL shards into the staging folder.

Lines are spread over `num_shards` shards per language and split by hash of (source, path,
line_no) (language_shards.shard_of); each shard is sorted by (source, path, line_no, text) and written with a zero gzip mtime, so the same
inputs always give byte-identical shards. Files are written under the run's staging folder
through `apache_beam.io.filesystems`; the launcher moves them into place once all succeeded.
Each shard's sha256 is computed here, as it is written, and nowhere else: it reaches the
launcher in `_meta/shards`, which finalize.publish reads for the manifest and `corpus_hash`.
"""

from __future__ import annotations

import gzip
import hashlib
import json

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.records import Line, order_key
from pipeline.textkey import line_id


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.jsonl.gz"


def to_record(line: Line) -> dict:
    return {
        "id": line_id(line.lang, line.source, line.path, line.line_no, line.text),
        "lang": line.lang,
        "source": line.source,
        "text": line.text,
    }


class _HashingWriter:
    """File-like wrapper that hashes and counts what goes through it."""

    def __init__(self, handle):
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self):
        pass


def write_shard(path: str, lines) -> dict:
    """Write sorted lines to `path` (gzipped JSONL); returns their count, and the file's bytes and sha256."""
    ordered = sorted(lines, key=order_key)
    handle = FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)  # we gzip ourselves
    writer = _HashingWriter(handle)
    with gzip.GzipFile(filename="", fileobj=writer, mode="wb", mtime=0) as gz:
        for line in ordered:
            gz.write((json.dumps(to_record(line), ensure_ascii=False) + "\n").encode("utf-8"))
    handle.close()
    return {"count": len(ordered), "bytes": writer.size, "sha256": writer.sha.hexdigest()}
