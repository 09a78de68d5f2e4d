"""Paths that may be URIs: local files, or `s3://`, `gs://` and any scheme Apache Beam reads.

Local paths use plain file operations; a path with a scheme goes through
`apache_beam.io.filesystems.FileSystems`, imported only then, so stages that never see a URI
never import Beam. Paths stay strings: `pathlib.Path("gs://b/x")` is "gs:/b/x".
"""

from __future__ import annotations

import os
from typing import BinaryIO


def is_remote(path) -> bool:
    return "://" in str(path)


def _filesystems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def join(base, *parts: str) -> str:
    if is_remote(base):
        return _filesystems().join(str(base), *parts)
    return os.path.join(str(base), *parts)


def relative_to(path, base) -> str:
    """`path` relative to the folder `base` ("lang/train-00000.jsonl.gz")."""
    if is_remote(path):
        prefix = str(base).rstrip("/") + "/"
        if not str(path).startswith(prefix):
            raise ValueError(f"{path} is not under {base}")
        return str(path)[len(prefix) :]
    return os.path.relpath(path, base)


def below(path, base) -> str:
    """`path` relative to `base` when it lies under it, else unchanged: where a line came from,
    the same whether the data folder is local or in a bucket."""
    base = str(base).rstrip("/")
    if is_remote(path):
        return str(path)[len(base) + 1 :] if str(path).startswith(base + "/") else str(path)
    absolute, root = os.path.abspath(path), os.path.abspath(base)
    return os.path.relpath(absolute, root) if absolute.startswith(root + os.sep) else str(path)


def exists(path) -> bool:
    return _filesystems().exists(str(path)) if is_remote(path) else os.path.exists(path)


def open_read(path) -> BinaryIO:
    """The file's bytes as a binary stream (never decompressed for you)."""
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes

        return _filesystems().open(str(path), compression_type=CompressionTypes.UNCOMPRESSED)
    return open(path, "rb")


def write_bytes(path, data: bytes) -> None:
    """A whole object in one upload: object stores show it only once complete (atomic)."""
    from apache_beam.io.filesystem import CompressionTypes

    handle = _filesystems().create(str(path), compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        handle.write(data)
    finally:
        handle.close()


def glob(pattern) -> list[str]:
    """Files matching `pattern` (`*` within a name, `**` across folders), sorted."""
    if is_remote(pattern):
        result = _filesystems().match([str(pattern)])[0]
        return sorted(m.path for m in result.metadata_list)
    import glob as _glob

    return sorted(p for p in _glob.glob(str(pattern), recursive=True) if os.path.isfile(p))


def delete(paths: list[str]) -> None:
    if paths:
        _filesystems().delete([str(p) for p in paths])


def rename(sources: list[str], targets: list[str]) -> None:
    """Local: os.replace (parents made); remote: copy and delete (object stores cannot rename)."""
    if not sources:
        return
    if is_remote(sources[0]):
        _filesystems().rename(list(sources), list(targets))
        return
    for source, target in zip(sources, targets):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        os.replace(source, target)
