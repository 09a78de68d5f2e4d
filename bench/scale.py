"""How the cost of each stage grows with its input (`make bench-scale`).

    python -m bench.scale [--config FILE] [key=value ...]

1. Corpus stage on 1x, 2x, 4x ... the shared corpus (bench/replicate.py: every source again under
   a new name, so dedup must find and drop the copies); DirectRunner with `workers` processes.
2. The same stage on `portable_scale`x through the PortableRunner (local job service, worker
   pool, `workers` SDK worker processes; bench/portable.py), beside the DirectRunner's time.
3. The same stage at each of `dask_scales` through Beam's DaskRunner on a local Dask cluster
   (scheduler and `workers` worker processes of one thread; pipeline/dask_cluster.py).
4. Tokenizer training on the 1x corpus at each of `tokenizer_chars` sample sizes.
5. Pretraining tokens/s at each of `pretrain_block_lens` (sequence lengths).

Every run is a separate `python -m <stage>` process; its wall time and peak memory (RSS summed
over all its processes, bench/process_tree.py, with the job service and worker pool, or the Dask
scheduler and workers) are measured from outside. Prints one JSON object
and writes it, with the config, to <out_dir>/scale.json, and the figure to <out_dir>/scale.png.
Run logs: <out_dir>/logs/.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.portable import local_portable_runner
from bench.process_tree import measure
from bench.replicate import replicate_data
from pipeline.dask_cluster import local_cluster
from common.cli import Command
from common.config import ConfigError, config_to_dict
from common.io import write_json
from pipeline.config import PACKAGE_DIR as PIPELINE_DIR
from pretrain.runfiles import TIMING, read_timing

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "scale.yaml"


@dataclass
class ScaleBenchConfig:
    data_dir: Path = Path("../shared/data")
    out_dir: Path = Path("out/bench-scale")
    langs: list[str] | None = None  # corpus languages (default all); a subset for quick runs
    corpus_scales: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    workers: int = 2  # Beam worker processes, both runners
    portable_scale: int = 4  # 0: no PortableRunner run
    dask_scales: list[int] = field(default_factory=lambda: [1, 4])  # []: no DaskRunner runs
    tokenizer_preset: str = "tiny"
    tokenizer_chars: list[int] = field(default_factory=lambda: [2_000_000, 6_000_000, 18_000_000])
    pretrain_preset: str = "tiny"
    pretrain_block_lens: list[int] = field(default_factory=lambda: [128, 512])
    pretrain_steps: int = 40

    def __post_init__(self) -> None:
        if 1 not in self.corpus_scales or min(self.corpus_scales) < 1:
            raise ConfigError(f"corpus_scales must be positive and include 1, got {self.corpus_scales}")
        if not self.tokenizer_chars or not self.pretrain_block_lens:
            raise ConfigError("tokenizer_chars and pretrain_block_lens need at least one value each")
        if self.portable_scale < 0 or self.workers < 1 or self.pretrain_steps < 10:
            raise ConfigError("portable_scale must be >= 0, workers >= 1 and pretrain_steps >= 10")
        if any(scale < 1 for scale in self.dask_scales):
            raise ConfigError(f"dask_scales must be positive, got {self.dask_scales}")


def progress(message: str) -> None:
    print(f"[bench-scale] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def corpus_run(cfg: ScaleBenchConfig, scale: int, beam_flags: list[str], extra_pids=(), runner="direct") -> dict:
    """One corpus stage run on `scale` x the data; its cost and totals."""
    work = Path(cfg.out_dir) / f"corpus-{scale}x-{runner}"
    shutil.rmtree(work, ignore_errors=True)
    data_root, catalog = replicate_data(PIPELINE_DIR / "catalog.yaml", cfg.data_dir, scale, work)
    settings = [f"data_dir={data_root}", f"catalog={catalog}", f"out_dir={work / 'corpus'}"] + (
        [f"langs=[{','.join(cfg.langs)}]"] if cfg.langs else []
    )
    cost = measure(
        python_module("pipeline.run", *settings, *beam_flags),
        Path(cfg.out_dir) / "logs" / f"corpus-{scale}x-{runner}.log",
        tuple(extra_pids),
    )
    totals = json.loads((work / "corpus" / "manifest.json").read_text(encoding="utf-8"))["totals"]
    input_mb = totals["bytes_read"] / 1e6
    return {
        "scale": scale,
        "runner": runner,
        **cost,
        "input_mb": round(input_mb, 1),
        "mb_per_s": round(input_mb / cost["seconds"], 3),
        "read": totals["read"],
        "kept": totals["kept"],
        "corpus_dir": str(work / "corpus"),
    }


def bench_corpus(cfg: ScaleBenchConfig) -> list[dict]:
    flags = [f"--direct_num_workers={cfg.workers}", "--direct_running_mode=multi_processing"]
    runs = []
    for scale in sorted(cfg.corpus_scales):
        progress(f"corpus {scale}x, DirectRunner, {cfg.workers} workers ...")
        runs.append(corpus_run(cfg, scale, flags))
        progress(f"corpus {scale}x: {runs[-1]['seconds']} s, peak {runs[-1]['peak_rss_mib']:.0f} MiB")
    if cfg.portable_scale:
        progress(f"corpus {cfg.portable_scale}x, PortableRunner, {cfg.workers} SDK workers ...")
        with local_portable_runner(Path(cfg.out_dir) / "logs" / "portable", cfg.workers) as (flags, pids):
            runs.append(corpus_run(cfg, cfg.portable_scale, flags, pids, runner="portable"))
        progress(f"corpus {cfg.portable_scale}x portable: {runs[-1]['seconds']} s")
    runs += bench_dask(cfg)
    one = next(r for r in runs if r["scale"] == 1)
    for run in runs:
        run["kept_same_as_1x"] = run["kept"] == one["kept"]
        if run is not one:
            shutil.rmtree(Path(run.pop("corpus_dir")).parent, ignore_errors=True)  # keep disk use flat
    return runs


def bench_dask(cfg: ScaleBenchConfig) -> list[dict]:
    """The corpus stage at each of `dask_scales` on one local Dask cluster (started once: its
    start-up is not the stage's cost, as the job service's is not for the PortableRunner)."""
    if not cfg.dask_scales:
        return []
    runs = []
    with local_cluster(Path(cfg.out_dir) / "logs" / "dask", cfg.workers) as (address, procs):
        flags = ["--runner=DaskRunner", f"--dask_client_address={address}"]
        for scale in sorted(cfg.dask_scales):
            progress(f"corpus {scale}x, DaskRunner, {cfg.workers} workers ...")
            runs.append(corpus_run(cfg, scale, flags, [p.pid for p in procs], runner="dask"))
            progress(f"corpus {scale}x dask: {runs[-1]['seconds']} s, peak {runs[-1]['peak_rss_mib']:.0f} MiB")
    return runs


def bench_tokenizer(cfg: ScaleBenchConfig, corpus_dir: Path) -> list[dict]:
    runs = []
    for chars in sorted(cfg.tokenizer_chars):
        progress(f"tokenizer, {chars:,} sample characters ...")
        out = Path(cfg.out_dir) / f"tokenizer-{chars}"
        shutil.rmtree(out, ignore_errors=True)
        cost = measure(
            python_module(
                "tokenizer.train",
                "--preset",
                cfg.tokenizer_preset,
                f"corpus_dir={corpus_dir}",
                f"out_dir={out}",
                f"sampling.char_budget={chars}",
            ),
            Path(cfg.out_dir) / "logs" / f"tokenizer-{chars}.log",
        )
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        sample = sum(lang["sample_chars"] for lang in report["languages"].values())
        runs.append(
            {
                "char_budget": chars,
                "sample_chars": sample,
                **cost,
                "chars_per_s": round(sample / cost["seconds"]),
                "tokenizer_dir": str(out),
            }
        )
        progress(f"tokenizer {chars:,}: {cost['seconds']} s")
    return runs


def bench_pretrain(cfg: ScaleBenchConfig, corpus_dir: Path, tokenizer_dir: Path) -> list[dict]:
    runs = []
    steps, log_every = cfg.pretrain_steps, max(1, cfg.pretrain_steps // 8)
    for block_len in sorted(cfg.pretrain_block_lens):
        progress(f"pretraining, {steps} steps of sequence length {block_len} ...")
        out = Path(cfg.out_dir) / f"pretrain-{block_len}"
        shutil.rmtree(out, ignore_errors=True)
        cost = measure(
            python_module(
                "pretrain.train",
                "--preset",
                cfg.pretrain_preset,
                f"corpus_dir={corpus_dir}",
                f"tokenizer_dir={tokenizer_dir}",
                f"out_dir={out / 'run'}",
                f"data.cache_dir={out / 'cache'}",
                f"data.block_len={block_len}",
                f"train.max_steps={steps}",
                f"train.log_every={log_every}",
                f"train.warmup_steps={steps // 4}",
                f"train.eval_every={steps}",
                f"train.checkpoint_every={steps}",
                "selection.strategy=random",
            ),
            Path(cfg.out_dir) / "logs" / f"pretrain-{block_len}.log",
        )
        speeds = [r["tokens_per_s"] for r in read_timing(out / "run" / TIMING)][1:]  # first: warm-up
        runs.append(
            {
                "block_len": block_len,
                "steps": steps,
                **cost,
                "tokens_per_s": round(statistics.median(speeds)) if speeds else None,
            }
        )
        shutil.rmtree(out, ignore_errors=True)
        progress(f"pretraining {block_len}: {runs[-1]['tokens_per_s']} tokens/s")
    return runs


def growth_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Slope of log(y) against log(x): 1 = linear, 0 = flat."""
    if len(xs) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return round(sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx), 3)


def summarise(corpus: list[dict]) -> dict:
    direct = [r for r in corpus if r["runner"] == "direct"]
    xs = [r["scale"] for r in direct]
    biggest = direct[-1]
    summary = {
        "corpus_time_exponent": growth_exponent(xs, [r["seconds"] for r in direct]),
        "corpus_memory_exponent": growth_exponent(xs, [r["peak_rss_mib"] for r in direct]),
        f"corpus_time_{biggest['scale']}x_over_1x": round(biggest["seconds"] / direct[0]["seconds"], 2),
        f"corpus_memory_{biggest['scale']}x_over_1x": round(biggest["peak_rss_mib"] / direct[0]["peak_rss_mib"], 2),
        "kept_same_at_every_scale": all(r["kept_same_as_1x"] for r in corpus),
    }
    for portable in (r for r in corpus if r["runner"] == "portable"):
        for same in (r for r in direct if r["scale"] == portable["scale"]):
            summary["portable_over_direct_time"] = round(portable["seconds"] / same["seconds"], 2)
    for dask in (r for r in corpus if r["runner"] == "dask"):
        for same in (r for r in direct if r["scale"] == dask["scale"]):
            summary[f"dask_over_direct_time_{dask['scale']}x"] = round(dask["seconds"] / same["seconds"], 2)
    return summary


def run(cfg: ScaleBenchConfig) -> dict:
    started = time.time()
    machine = {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1min_start": round(os.getloadavg()[0], 1),
    }
    corpus = bench_corpus(cfg)
    corpus_1x = Path(next(r["corpus_dir"] for r in corpus if r["scale"] == 1 and r["runner"] == "direct"))
    tokenizer = bench_tokenizer(cfg, corpus_1x)
    pretrain = bench_pretrain(cfg, corpus_1x, Path(tokenizer[0]["tokenizer_dir"]))
    machine["load_average_1min_end"] = round(os.getloadavg()[0], 1)
    result = {
        "config": config_to_dict(cfg),
        "machine": machine,
        "summary": summarise(corpus),
        "corpus": corpus,
        "tokenizer": tokenizer,
        "pretrain": pretrain,
        "seconds": round(time.time() - started, 1),
    }
    write_json(Path(cfg.out_dir) / "scale.json", result)
    from bench.scale_figure import plot_scale  # matplotlib only when there is something to draw

    plot_scale(result, Path(cfg.out_dir) / "scale.png")
    return result


COMMAND = Command(
    ScaleBenchConfig,
    "python -m bench.scale",
    __doc__,
    presets=DEFAULT_CONFIG.parent,
    default_preset=DEFAULT_CONFIG.stem,
)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: print_result(cfg, run(cfg)), failures=(RuntimeError,))


def print_result(cfg: ScaleBenchConfig, result: dict) -> None:
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    progress(f"wrote {Path(cfg.out_dir) / 'scale.json'} and {Path(cfg.out_dir) / 'scale.png'}")


if __name__ == "__main__":
    sys.exit(main())
