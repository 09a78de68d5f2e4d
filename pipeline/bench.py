"""Benchmark of the corpus stage: Beam (default: DirectRunner, 2 worker processes) against a plain
single-process Python loop doing the same per-line work, on the same inputs, in one run.

    python -m pipeline.bench [--config FILE] [key=value ...] [Beam flags]     (make bench-corpus)

Prints one JSON object: input MB (bytes the readers yielded), seconds and MB/s of each, the
speed-up, and whether both kept the same lines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import uri
from pipeline.config import CorpusConfig
from pipeline.decontam import EvalIndex, plan_sources
from pipeline.exact_dedup import keep_smallest
from pipeline.near_dedup import Signer, dedup_language
from pipeline.read import readable
from pipeline.readers import read_file
from pipeline.run import COMMAND as RUN_COMMAND
from pipeline.run import expand_tasks, run_config
from pipeline.steps import clean, line_units
from pipeline.tally import text_size
from pipeline.valid_split import split_of, valid_share
from pipeline.write_shards import shard_name, write_shard


def plain_loop(cfg: CorpusConfig, tasks: list, out_dir: Path) -> dict:
    """The same steps as pipeline.run (the same unit functions, pipeline/steps.py), as one Python
    loop in one process, without the stats and samples."""
    index = (
        EvalIndex.from_sources(plan_sources(cfg).sources, cfg.data_dir, cfg.decontam) if cfg.decontam.enabled else None
    )
    units = line_units(cfg, index)
    raw_bytes, survivors = 0, {}
    for entry, path in tasks:
        for line in read_file(entry, path):
            line = readable(line._replace(path=uri.below(line.path, cfg.data_dir)))
            raw_bytes += text_size(line.text)
            keep_smallest([unit for unit in clean(line, units) if unit.reason is None], survivors)
    by_lang: dict[str, list] = defaultdict(list)
    signer = Signer(cfg.minhash)
    for line in survivors.values():
        by_lang[line.lang].append((line, signer.signature(line.key).tobytes()))
    kept = 0
    for lang, pairs in by_lang.items():
        lines = (
            [x for x in dedup_language(pairs, cfg.minhash) if x.reason is None]
            if cfg.minhash.enabled
            else [line for line, _ in pairs]
        )
        share = valid_share(len(lines), cfg.valid)
        for split in ("train", "valid"):
            part = [line for line in lines if split_of(line, share) == split]
            if part:
                write_shard(str(out_dir / lang / shard_name(split, 0)), part)
        kept += len(lines)
    return {"raw_bytes": raw_bytes, "kept": kept}


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (Beam's worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


COMMAND = dataclasses.replace(RUN_COMMAND, prog="python -m pipeline.bench", doc=__doc__)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, bench)


def bench(cfg: CorpusConfig, args) -> None:
    beam_flags = args.passthrough
    tasks = expand_tasks(cfg)
    work = Path(tempfile.mkdtemp(prefix="corpus-bench-"))
    try:
        start, cpu = time.time(), cpu_seconds()
        manifest = run_config(dataclasses.replace(cfg, out_dir=str(work / "beam")), args)
        beam_s, beam_cpu = time.time() - start, cpu_seconds() - cpu
        start, cpu = time.time(), cpu_seconds()
        (work / "plain").mkdir()
        plain = plain_loop(cfg, tasks, work / "plain")
        plain_s, plain_cpu = time.time() - start, cpu_seconds() - cpu
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = plain["raw_bytes"] / 1e6
    print(
        json.dumps(
            {
                "input_mb": round(mb, 2),
                "files": len(tasks),
                "beam": {
                    "seconds": round(beam_s, 1),
                    "mb_per_s": round(mb / beam_s, 3),
                    "cpu_seconds": round(beam_cpu, 1),
                    "kept": manifest["totals"]["kept"],
                    "flags": beam_flags or "default (2 processes)",
                },
                "plain_loop": {
                    "seconds": round(plain_s, 1),
                    "mb_per_s": round(mb / plain_s, 3),
                    "cpu_seconds": round(plain_cpu, 1),
                    "kept": plain["kept"],
                },
                "speedup": round(plain_s / beam_s, 2),
                "load_average_1min": round(os.getloadavg()[0], 1),
                "cpus": os.cpu_count(),
                "same_kept_count": manifest["totals"]["kept"] == plain["kept"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
