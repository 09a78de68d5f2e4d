"""Atomic writes, hashing and stage manifests.

Every stage writes through `atomic_write` (temp file in the same folder, fsync, rename),
so a killed process never leaves a half-written file under its final name. A stage's
`manifest.json` records its resolved config, the hashes of its inputs, package versions
and the hashes of its outputs; `manifest_is_current` tells whether a rerun can be skipped.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from common import uri

MANIFEST_NAME = "manifest.json"


def _current_umask() -> int:
    # /proc avoids the os.umask(0) round trip, which races with other threads.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "sentencepiece",
    "datasets",
    "apache-beam",
    "datasketch",
    "evaluate",
    "seqeval",
    "scikit-learn",
    "huggingface_hub",
    "numpy",
)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside `path`; rename it over `path` only if the block succeeds.

    A URI (`s3://...`) is written as one upload when the block succeeds: object stores show an
    object only once it is complete, which is what the rename gives locally."""
    if uri.is_remote(path):
        with _remote_write(str(path), mode, encoding) as handle:
            yield handle
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs are shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _remote_write(path: str, mode: str, encoding: str | None) -> Iterator[IO]:
    buffer = io.BytesIO()
    handle = buffer if "b" in mode else io.TextIOWrapper(buffer, encoding=encoding, newline="")
    yield handle
    handle.flush()
    uri.write_bytes(path, buffer.getvalue())


def write_json(path: str | Path, data: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2, sort_keys=True)
        handle.write("\n")


def write_jsonl_gz(path: str | Path, records: Iterable[dict]) -> int:
    """Atomically write gzipped JSON lines; returns the number of records."""
    count = 0
    with atomic_write(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for record in records:
                gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
                count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with uri.open_read(path) as raw:
        stream = (
            gzip.open(raw, "rt", encoding="utf-8")
            if str(path).endswith(".gz")
            else io.TextIOWrapper(raw, encoding="utf-8")
        )
        for line in stream:
            if line.strip():
                yield json.loads(line)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with uri.open_read(path) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(
    out_dir: str | Path,
    stage: str,
    config: dict,
    inputs: dict[str, str],
    outputs: Iterable[str | Path] = (),
    extra: dict | None = None,
    hashes: Mapping[str, str] | None = None,
) -> dict:
    """Record what produced `out_dir`. Written last: its presence marks the stage complete.
    `hashes`: the sha256 of outputs already known (by their path in `outputs`), not read again."""
    output_hashes = {}
    for out in outputs:
        known = (hashes or {}).get(str(out))
        output_hashes[uri.relative_to(out, out_dir)] = known or sha256_file(out)
    manifest = {
        "stage": stage,
        "config": config,
        "config_hash": sha256_json(config),
        "inputs": inputs,
        "inputs_hash": sha256_json(inputs),
        "outputs": output_hashes,
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    write_json(uri.join(out_dir, MANIFEST_NAME), manifest)
    return manifest


def read_manifest(out_dir: str | Path) -> dict | None:
    path = uri.join(out_dir, MANIFEST_NAME)
    if not uri.exists(path):
        return None
    try:
        with uri.open_read(path) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def manifest_is_current(out_dir: str | Path, config: dict, inputs: dict[str, str]) -> bool:
    """True when `out_dir` was built from exactly this config and these inputs, intact."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return False
    if manifest.get("config_hash") != sha256_json(config):
        return False
    if manifest.get("inputs_hash") != sha256_json(inputs):
        return False
    for rel, digest in manifest.get("outputs", {}).items():
        path = uri.join(out_dir, rel)
        if not uri.exists(path) or sha256_file(path) != digest:
            return False
    return True
