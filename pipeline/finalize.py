"""Publishing a finished run: staging folder -> out_dir, then the manifest (written last).

Beam writes every shard into `out_dir/.staging-<run>/`. Only after the pipeline succeeded does
the launcher (1) delete the old manifest, so an interrupted publish is never taken for complete,
(2) delete the old shards, stats and rejected samples, (3) move the new ones into place with
renames, and (4) write manifest.json with `corpus_hash`. A killed job therefore leaves either the
previous complete corpus or no manifest; shards are only ever whole files; a rerun deletes stale
staging folders and rebuilds everything. out_dir may be a URI (`s3://...`): every file
operation goes through common/uri.py (Beam's FileSystems for URIs).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid

from common import uri
from common.io import MANIFEST_NAME, atomic_write, sha256_json, write_json, write_manifest

log = logging.getLogger(__name__)
STAGING_PREFIX = ".staging-"
# What this stage writes into out_dir; only these are ever deleted there.
OUTPUT_PATTERNS = ("*/train-*.jsonl.gz", "*/valid-*.jsonl.gz", "rejected/*.jsonl", "stats.json", "config.yaml")


def new_staging(out_dir: str) -> str:
    """A fresh staging folder under out_dir (absolute when local: Beam's workers may not share
    the launcher's working directory)."""
    name = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    if uri.is_remote(out_dir):
        return uri.join(out_dir, name)  # object stores have no folders to make
    staging = os.path.join(os.path.abspath(out_dir), name)
    os.makedirs(staging)
    return staging


def clear_stale_staging(out_dir: str) -> None:
    if uri.is_remote(out_dir):  # no folders in an object store: the staged objects' prefixes
        names = {
            uri.relative_to(p, out_dir).split("/")[0] for p in uri.glob(uri.join(out_dir, f"{STAGING_PREFIX}*", "**"))
        }
    else:  # folders, empty ones included
        names = {
            os.path.basename(p) for p in _local_children(out_dir) if os.path.basename(p).startswith(STAGING_PREFIX)
        }
    for name in sorted(names):
        folder = uri.join(out_dir, name)
        log.info("removing stale staging folder %s (an earlier run did not finish)", folder)
        _delete_tree(folder)


def _local_children(folder: str) -> list[str]:
    return [os.path.join(folder, n) for n in os.listdir(folder)] if os.path.isdir(folder) else []


def _delete_tree(folder: str) -> None:
    if uri.is_remote(folder):
        uri.delete(uri.glob(uri.join(folder, "**")))
    else:
        shutil.rmtree(folder, ignore_errors=True)


def write_rejected_samples(staging: str, samples: list[dict], limit: int) -> None:
    by_reason: dict[str, list[dict]] = {}
    for sample in samples:
        by_reason.setdefault(sample["reason"], []).append(sample)
    for reason, rows in by_reason.items():
        rows.sort(key=lambda r: (r["source"], r["path"], r["line_no"], r["text"]))
        with atomic_write(uri.join(staging, "rejected", f"{reason}.jsonl")) as handle:
            for row in rows[:limit]:
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _old_outputs(out_dir: str) -> list[str]:
    return sorted({p for pattern in OUTPUT_PATTERNS for p in uri.glob(uri.join(out_dir, pattern))})


def publish(staging: str, out_dir: str, config: dict, inputs: dict[str, str], shards: list[dict], extra: dict) -> dict:
    """Move staged outputs into out_dir and write the manifest last; returns the manifest.

    `shards`: the shard infos of `_meta/shards` ({"path" below staging, "sha256", ...}): their
    hashes were computed as the shards were written, and are not computed again here."""
    manifest = uri.join(out_dir, MANIFEST_NAME)
    if uri.exists(manifest):
        uri.delete([manifest])
    uri.delete(_old_outputs(out_dir))
    if not uri.is_remote(out_dir):  # language folders left empty by the deletion
        for folder in _local_children(out_dir):
            if os.path.isdir(folder) and not os.listdir(folder) and not os.path.basename(folder).startswith("."):
                os.rmdir(folder)
    staged = [
        p for p in uri.glob(uri.join(staging, "**")) if not uri.relative_to(p, staging).startswith("_")
    ]  # _meta: Beam's bookkeeping
    shard_hashes = {info["path"]: info["sha256"] for info in shards}
    staged_shards = sorted(uri.relative_to(p, staging) for p in staged if p.endswith(".jsonl.gz"))
    if staged_shards != sorted(shard_hashes):
        raise RuntimeError(f"the staged shards {staged_shards} are not the ones written {sorted(shard_hashes)}")
    published = [uri.join(out_dir, uri.relative_to(p, staging)) for p in staged]
    uri.rename(staged, published)
    _delete_tree(staging)
    # corpus_hash covers the shards only (the corpus itself), so the same text gives the same
    # hash whatever out_dir, runner or timing; the manifest hashes every output.
    corpus_hash = sha256_json(shard_hashes)
    return write_manifest(
        out_dir,
        "corpus",
        config,
        inputs,
        published,
        extra={"corpus_hash": corpus_hash, **extra},
        hashes={uri.join(out_dir, path): sha for path, sha in shard_hashes.items()},
    )


def write_stats(staging: str, stats: dict) -> None:
    write_json(uri.join(staging, "stats.json"), stats)
