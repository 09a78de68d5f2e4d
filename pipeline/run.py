"""Corpus stage: raw text in many formats -> clean, deduplicated, decontaminated shards.

    python -m pipeline.run [--config FILE] [key=value ...] [Beam pipeline flags]

App settings are `key=value` overrides of pipeline/config.py (e.g. `langs=[yor,hau]`,
`filter.min_words=5`); every other flag goes to Beam's PipelineOptions, so
`--runner=DataflowRunner|FlinkRunner|SparkRunner|PortableRunner ...` work unchanged, and
`--runner=DaskRunner` (or `dask`) with `--dask_client_address=tcp://HOST:8786`. Without a
runner flag it uses the DirectRunner with 2 worker processes. See docs/corpus.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import apache_beam as beam
import regex
import yaml
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from common import uri
from common.cli import Command
from common.config import ConfigError, config_to_dict
from common.io import atomic_write, manifest_is_current, sha256_file, sha256_json
from pipeline import catalog, counters, finalize, readers
from pipeline.config import DEFAULT_CONFIG, CorpusConfig
from pipeline.batches import CleanBatch, ReadBatches, SmallestSamples, sample_rows
from pipeline.dask_cluster import close_dask_client, resolve_runner
from pipeline.decontam import EvalSources, plan_sources
from pipeline.exact_dedup import ExactDedup
from pipeline.language_shards import LanguageShards
from pipeline.meta import WriteMeta
from pipeline.outputs import ParDoByTag
from pipeline.stats import SumCounts, build_stats
from pipeline.steps import STEPS
from pipeline.tally import COUNTS, SAMPLES

log = logging.getLogger("pipeline")
REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_BEAM_FLAGS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


COMMAND = Command(
    CorpusConfig,
    "python -m pipeline.run",
    __doc__,
    presets=DEFAULT_CONFIG.parent,
    default_preset=DEFAULT_CONFIG.stem,
    passthrough=True,
)


def beam_options(beam_flags: list[str]) -> PipelineOptions:
    if not any(flag.startswith("--runner") for flag in beam_flags):
        beam_flags = DEFAULT_BEAM_FLAGS + beam_flags
    return PipelineOptions(resolve_runner(beam_flags))  # --runner=DaskRunner or dask: Beam's Dask runner


# ---------------------------------------------------------------- catalog and inputs


def expand_tasks(cfg: CorpusConfig) -> list[tuple]:
    """(entry, path) pairs for the selected sources and languages; errors name the bad setting.

    Sources come from this module's `catalog` (load_catalog / expand_entry) and are read with its
    `readers.read_file` (build_pipeline); the tests put a small stand-in in their place."""
    entries = catalog.load_catalog(cfg.catalog, cfg.data_dir)
    for setting, wanted, have in (
        ("langs", cfg.langs, {e.lang for e in entries}),
        ("sources", cfg.sources, {e.name for e in entries}),
    ):
        unknown = sorted(set(wanted or ()) - have)
        if unknown:
            raise ConfigError(f"{setting}: {unknown} not in catalog {cfg.catalog}; known: {sorted(have)}")
    entries = [
        e
        for e in entries
        if (cfg.langs is None or e.lang in cfg.langs) and (cfg.sources is None or e.name in cfg.sources)
    ]
    tasks = [(entry, str(path)) for entry in entries for path in catalog.expand_entry(entry, cfg.data_dir)]
    if not tasks:
        raise ConfigError(f"no input files for langs={cfg.langs} sources={cfg.sources} in {cfg.catalog}")
    return tasks


def input_hashes(cfg: CorpusConfig, tasks: list[tuple], evals: EvalSources | None) -> dict[str, str]:
    """sha256 of every input file, the catalog and the eval files used for decontamination."""
    remote = uri.is_remote(cfg.data_dir)
    data_dir = str(cfg.data_dir).rstrip("/") if remote else Path(cfg.data_dir).resolve()

    def name(path: str) -> str:
        """Relative to data_dir, so the same data hashes alike wherever it is stored."""
        if remote:
            return uri.relative_to(path, data_dir) if str(path).startswith(f"{data_dir}/") else str(path)
        path = Path(path).resolve()
        return str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else str(path)

    # The stage's own code counts as an input: a changed filter must not be skipped as current.
    code = sorted(p for pkg in ("pipeline", "common") for p in (REPO_DIR / pkg).rglob("*.py"))
    hashes = {
        "catalog": sha256_file(cfg.catalog),
        "code": sha256_json({str(p.relative_to(REPO_DIR)): sha256_file(p) for p in code}),
    }
    for path in sorted({p for _, p in tasks}):
        hashes[f"data:{name(path)}"] = sha256_file(path)
    for entry in evals.record.values() if evals else ():
        for path, sha in entry["files"].items():
            hashes[f"eval:{name(path)}"] = sha
    return hashes


# ---------------------------------------------------------------- the pipeline


def build_pipeline(
    p: beam.Pipeline, cfg: CorpusConfig, tasks: list[tuple], staging: str, eval_sources: list[tuple] = ()
) -> None:
    """The one graph of the corpus stage: every step of steps.STEPS, under the labels their
    `runs_in` names; outputs land in `staging` (shards) and `staging/_meta` (bookkeeping).

    Lines travel in packed batches: steps 1-6 run per batch (pipeline/batches.py), exact dedup
    per bucket of dedup keys, steps 8-10 per language; counts and rejected samples are summed per
    batch before they reach the runner (docs/corpus.md, benchmark)."""
    batches = (
        p
        | "Files" >> beam.Create(tasks, reshuffle=False)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadBatches" >> beam.ParDo(ReadBatches(readers.read_file, data_dir=str(cfg.data_dir)))
        | "SpreadBatches" >> beam.Reshuffle()
    )
    clean = batches | "Clean" >> ParDoByTag(CleanBatch(cfg, eval_sources), (COUNTS, SAMPLES), main="buckets")
    unique = clean["buckets"] | "ExactDedup" >> ExactDedup(cfg.rejected_samples)
    written = unique["unique"] | "PerLanguage" >> LanguageShards(
        staging, cfg.num_shards, cfg.minhash, cfg.valid, cfg.rejected_samples
    )
    steps = (clean, unique, written)
    counts = tuple(step[COUNTS] for step in steps) | "AllCounts" >> beam.Flatten() | "SumCounts" >> SumCounts()
    samples = (
        tuple(step[SAMPLES] for step in steps)
        | "AllSamples" >> beam.Flatten()
        | "FirstPerReason" >> beam.CombinePerKey(SmallestSamples(cfg.rejected_samples))
        | "SampleRows" >> beam.FlatMap(sample_rows)
    )
    # The last step, and the graph's only sink (pipeline/meta.py says why).
    {"counts": counts, "samples": samples, "shards": written["shards"]} | "WriteMeta" >> WriteMeta(
        FileSystems.join(staging, "_meta")
    )


def read_meta(staging: str, name: str) -> list:
    with uri.open_read(uri.join(staging, "_meta", name)) as handle:
        return [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line]


# ---------------------------------------------------------------- entry point


def summary_table(stats: dict) -> str:
    rows = [f"{'lang':<6}{'read':>10}{'kept':>10}{'dropped':>10}{'kept MB':>10}"]
    for lang, entry in sorted(stats["languages"].items()):
        rows.append(
            f"{lang:<6}{entry['read']:>10}{entry['kept']:>10}{entry['dropped']:>10}{entry['kept_bytes'] / 1e6:>10.2f}"
        )
    t = stats["total"]
    rows.append(f"{'total':<6}{t['read']:>10}{t['kept']:>10}{t['dropped']:>10}{t['kept_bytes'] / 1e6:>10.2f}")
    return "\n".join(rows)


def run(argv: list[str] | None = None) -> dict | None:
    """Run the stage; returns the manifest (None when skipped)."""
    return run_config(*COMMAND.read(argv))


def run_config(cfg: CorpusConfig, args: argparse.Namespace) -> dict | None:
    """Run the stage with these settings and `args.passthrough` as Beam's flags."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    beam_flags = args.passthrough
    config = config_to_dict(cfg)
    out_dir = str(cfg.out_dir)
    options = beam_options(beam_flags)
    FileSystems.set_options(options)  # the launcher reads and publishes URIs too (--s3_endpoint_url ...)
    tasks = expand_tasks(cfg)
    log.info("catalog: %d files from %d sources", len(tasks), len({e.name for e, _ in tasks}))
    evals = plan_sources(cfg) if cfg.decontam.enabled else None
    inputs = input_hashes(cfg, tasks, evals)
    if manifest_is_current(out_dir, config, inputs):
        print(f"corpus: {out_dir} is up to date (same config and inputs); skipped")
        return None
    finalize.clear_stale_staging(out_dir)
    staging = finalize.new_staging(out_dir)
    start = time.time()
    log.info("steps: %s (staging %s)", " -> ".join(step.name for step in STEPS), staging)
    try:
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, cfg, tasks, staging, evals.sources if evals else ())
    except Exception as err:
        if uri.is_remote(out_dir) or uri.is_remote(cfg.data_dir):
            raise StorageError(storage_failure(err, staging)) from err
        raise
    close_dask_client(p.result)
    log.info("beam pipeline finished in %.1fs; publishing to %s", time.time() - start, out_dir)
    stats = build_stats([(tuple(k), tuple(v)) for k, v in read_meta(staging, "counts")])
    finalize.write_stats(staging, stats)
    finalize.write_rejected_samples(staging, read_meta(staging, "samples"), cfg.rejected_samples)
    with atomic_write(uri.join(staging, "config.yaml")) as handle:
        handle.write(yaml.safe_dump(config, allow_unicode=True, sort_keys=True))
    manifest = finalize.publish(
        staging,
        out_dir,
        config,
        inputs,
        read_meta(staging, "shards"),
        extra={
            "totals": stats["total"],
            "seconds": round(time.time() - start, 1),
            "decontaminated_against": evals.record if evals else {},
        },
    )
    print(summary_table(stats))
    print(counters.report(p.result, stats))
    print("dropped by reason:", ", ".join(f"{k} {v}" for k, v in sorted(stats["total"]["dropped_by_reason"].items())))
    print(
        "decontaminated by eval set:",
        ", ".join(f"{k} {v}" for k, v in sorted(stats["total"]["decontaminated_by_eval_set"].items())) or "none",
    )
    print(
        f"corpus: {stats['total']['kept']} lines in {len(stats['languages'])} languages -> {out_dir} "
        f"(corpus_hash {manifest['corpus_hash'][:12]}, {time.time() - start:.0f}s)"
    )
    return manifest


class StorageError(RuntimeError):
    """The run failed while its data or outputs live in an object store; nothing was published."""


_URI = regex.compile(r"(?:s3|gs)://[^\s\"']+|endpoint URL: \"([^\"]+)\"")


def storage_failure(err: BaseException, staging: str) -> str:
    """A message naming the URI the store failed on (Beam's S3 client can hide it behind its own
    error), found in the chain of causes; the staging folder when none names one."""
    where, chain = None, err
    while chain is not None and where is None:
        found = _URI.search(str(chain))
        where = (found.group(1) or found.group(0)) if found else None
        chain = chain.__cause__ or chain.__context__
    return (
        f"the corpus run failed at {where or staging}: {type(err).__name__}: {str(err)[:300]}; "
        "nothing was published (rerun once the store answers: finished work is redone, the result "
        "is the same)"
    )


def main(argv: list[str] | None = None) -> int:
    # Bad settings or catalog entries end with their message, not a traceback.
    return COMMAND.run(argv, run_config, failures=(StorageError,))


if __name__ == "__main__":
    sys.exit(main())
