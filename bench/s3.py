"""The corpus stage from and to S3 beside a local run, on a slice of the shared data (`make bench-s3`).

    python -m bench.s3 [data_dir=../shared/data] [sources=[...]] [sets=[...]]

Starts moto (an S3-compatible server) on loopback, uploads the slice (the sources' files and the
evaluation sets used for decontamination), runs the stage local -> local and s3 -> s3 with the
same settings, and prints JSON: files, MB, seconds of each run, lines kept, whether the corpus
hashes agree. moto is a single-threaded Python server: its seconds say little about a real store.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.s3_server import S3Server, upload_tree
from common.cli import Command
from pipeline import catalog
from pipeline.run import run


@dataclass
class S3BenchConfig:
    data_dir: str = "../shared/data"
    sources: list[str] = field(
        default_factory=lambda: [
            "kikuyu_genesis_kik",
            "yoruba_proverbs_yor",
            "za_news_titles_ssw",
            "kinyarwanda_news_kin",
            "lafand_hau",
        ]
    )
    sets: list[str] = field(default_factory=lambda: ["yosm", "afrisenti"])


COMMAND = Command(S3BenchConfig, "python -m bench.s3", __doc__)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: bench(cfg))


def bench(cfg: S3BenchConfig) -> None:
    data_dir = Path(cfg.data_dir).resolve()
    settings = [f"sources=[{', '.join(cfg.sources)}]", f"decontam.sets=[{', '.join(cfg.sets)}]"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = S3Server(tmp)
    try:
        client = server.client()
        client.create_bucket(Bucket="corpus")
        entries = {e.name: e for e in catalog.load_catalog(catalog.DEFAULT_CATALOG, data_dir)}
        files = sorted({Path(p) for name in cfg.sources for p in catalog.expand_entry(entries[name], str(data_dir))})
        files += sorted(p for name in cfg.sets for p in (data_dir / "eval").glob(f"{name}/**/*.tsv"))
        start = time.time()
        upload_tree(client, "corpus", data_dir, files, "data")
        upload = time.time() - start
        start = time.time()
        local = run([f"data_dir={data_dir}", f"out_dir={tmp / 'local'}", *settings])
        local_s = time.time() - start
        start = time.time()
        remote = run(["data_dir=s3://corpus/data", "out_dir=s3://corpus/out", *settings, *server.beam_flags()])
        remote_s = time.time() - start
    finally:
        server.stop()
    print(
        json.dumps(
            {
                "files": len(files),
                "MB": round(sum(f.stat().st_size for f in files) / 1e6, 1),
                "upload_s": round(upload, 1),
                "local_s": round(local_s, 1),
                "s3_s": round(remote_s, 1),
                "ratio_s3_over_local": round(remote_s / local_s, 2),
                "kept": local["totals"]["kept"],
                "same_corpus_hash": local["corpus_hash"] == remote["corpus_hash"],
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
