"""Publishing a finished run: staging folder -> out_dir, then the manifest (written last).

Beam writes every shard into `out_dir/.staging-<run>/`. Only after the pipeline succeeded does
the launcher (1) delete the old manifest, so an interrupted publish is never taken for complete,
(2) delete the old shards, stats and rejected samples, (3) move the new ones into place with
renames, and (4) write manifest.json with `corpus_hash`. A killed job therefore leaves either the
previous complete corpus or no manifest; shards are only ever whole files; a rerun deletes stale
staging folders and rebuilds everything (RELIABILITY row 25).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from common.io import MANIFEST_NAME, sha256_file, sha256_json, write_json, write_manifest

log = logging.getLogger(__name__)
STAGING_PREFIX = ".staging-"


def clear_stale_staging(out_dir: Path) -> None:
    for stale in out_dir.glob(f"{STAGING_PREFIX}*"):
        log.info("removing stale staging folder %s (an earlier run did not finish)", stale)
        shutil.rmtree(stale, ignore_errors=True)


def write_rejected_samples(staging: Path, samples: list[dict], limit: int) -> None:
    by_reason: dict[str, list[dict]] = {}
    for sample in samples:
        by_reason.setdefault(sample["reason"], []).append(sample)
    for reason, rows in by_reason.items():
        rows.sort(key=lambda r: (r["source"], r["path"], r["line_no"], r["text"]))
        path = staging / "rejected" / f"{reason}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row in rows[:limit]:
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _is_ours(folder: Path) -> bool:
    """Only folders this stage writes are ever deleted: rejected/ and language shard folders."""
    return folder.name == "rejected" or any(folder.glob("train-*.jsonl.gz")) or any(folder.glob("valid-*.jsonl.gz"))


def _old_outputs(out_dir: Path) -> list[Path]:
    old = [p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_ours(p)]
    old += [out_dir / name for name in ("stats.json", "config.yaml") if (out_dir / name).exists()]
    return old


def publish(staging: Path, out_dir: Path, config: dict, inputs: dict[str, str], extra: dict) -> dict:
    """Move staged outputs into out_dir and write the manifest last; returns the manifest."""
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for old in _old_outputs(out_dir):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    published = []
    for item in sorted(staging.iterdir()):
        if item.name.startswith("_"):      # Beam's bookkeeping (counts, samples, shard list)
            continue
        target = out_dir / item.name
        item.rename(target)
        published += [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    shutil.rmtree(staging)
    # corpus_hash covers the shards only (the corpus itself), so the same text gives the same
    # hash whatever out_dir, runner or timing; the manifest still hashes every output.
    shards = {str(p.relative_to(out_dir)): sha256_file(p) for p in published if p.name.endswith(".jsonl.gz")}
    corpus_hash = sha256_json(shards)
    return write_manifest(out_dir, "corpus", config, inputs, published,
                          extra={"corpus_hash": corpus_hash, **extra})


def write_stats(staging: Path, stats: dict) -> None:
    write_json(staging / "stats.json", stats)
