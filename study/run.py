"""Does self-active selection work? A seeded grid of pretraining runs that differ only in the
selection strategy, each finetuned with the finetuning stage's protocol, then analysed against
the verdict rules of docs/study.md ("How the verdict is computed").

    python -m study corpus_dir=out/corpus tokenizer_dir=out/tokenizer out_dir=out/study
    python -m study ... shard=0/2              # this machine runs runs 0, 2, 4, ...; another shard=1/2
    python -m study ... analyse_only=true      # analysis.md, analysis.json, results.csv from the runs on disk

Every run of the main grid gets the same pretraining preset and settings (same steps x batch x
block: equal training tokens; same `candidates_per_round`: equal scoring budget, reported
separately), so the resolved configs differ only in `selection.strategy`, `selection.seed`,
`train.seed` and `out_dir`; the same seed in every arm makes the runs paired. Two more grids:
`random+parity` (random selection plus as many extra steps as `parity_from`'s scoring time is
worth, run once those runs exist) and the positive control in `runs-noise/`: every strategy on a
pool of which `noise_share` is noise blocks (pretrain's `data.noise_share`), where a strategy
that works must choose less noise than `random`. A run whose pretraining manifest and finetuning record are current is
skipped, so a study can be stopped, continued later, or split across machines (then copy the
run folders into one `out_dir` and run `analyse_only=true`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from common import corpus
from common.cli import Command
from common.config import ConfigError, config_to_dict
from common.io import manifest_is_current, read_manifest, sha256_json, write_json
from pretrain.runfiles import TIMING, read_timing
from pretrain.strategies import STRATEGIES as REGISTRY
from tokenizer import tokenizer_hash

STRATEGIES = tuple(REGISTRY)  # the arms: every registered selection strategy
# Settings allowed to differ between the runs of the main grid (test_study: equal budgets).
PER_RUN_SETTINGS = frozenset({"selection.strategy", "selection.seed", "train.seed", "out_dir"})
FINETUNE_RECORD = "study-finetune.json"
PARITY = "+parity"  # the compute-parity arm is `<control>+parity`
PARITY_RECORD = "parity.json"  # how the parity arm's extra steps were measured
GRIDS = {"main": "runs", "noise": "runs-noise"}  # grid -> folder of its runs under out_dir


@dataclass
class StudyConfig:
    """One study: inputs, the grid, the pretraining preset, the finetuning protocol, the verdict rules."""

    corpus_dir: Path = Path("out/corpus")  # corpus stage output (docs/interfaces.md)
    tokenizer_dir: Path = Path("out/tokenizer")  # tokenizer stage output
    data_dir: Path = Path("../shared/data")  # evaluation sets for finetuning (data_dir/eval)
    out_dir: Path = Path("out/study")  # runs/<arm>-seed<k>/, runs-noise/, cache/, analysis files
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # selection strategies compared
    control: str = "random"  # the strategy every other one is compared with
    seeds: list[int] = field(
        default_factory=lambda: list(range(1, 9))
    )  # pretraining seeds, the same in every arm (train.seed = selection.seed)
    langs: list[str] = field(
        default_factory=lambda: ["amh", "hau", "ibo", "pcm", "som", "swa", "yor"]
    )  # pretraining languages; those absent from the corpus are left out (printed)
    preset: str = "auto"  # pretrain preset; auto = `study` on CPU, gpu_preset when CUDA is visible
    gpu_preset: str = "study_gpu"  # the preset `auto` picks on a GPU (its arithmetic is in its comments)
    gpu_overrides: list[str] = field(default_factory=list)  # applied with gpu_preset by `auto`
    overrides: list[str] = field(default_factory=list)  # extra pretrain key=value settings, the same for every run
    parity_from: str = (
        "loss"  # the arm whose scoring time buys `<control>+parity` its extra training steps; empty = no parity arm
    )
    parity_steps: int = (
        0  # extra steps of the parity arm; 0 = measured from parity_from's timing.jsonl once all its runs exist
    )
    noise_share: float = 0.33  # positive control: share of noise blocks in the pool (pretrain's data.noise_share) of a separate grid in runs-noise/; 0 = no such grid
    noise_seeds: list[int] = field(default_factory=lambda: [1, 2, 3])  # seeds of the positive-control grid
    noise_overrides: list[str] = field(
        default_factory=list
    )  # more pretrain key=value settings for the positive-control grid only
    finetune: bool = False  # also finetune every run's final model (finetune.run; ~10 more minutes for the CPU grid); not the positive-control grid
    finetune_preset: str = "tiny"  # finetune preset (the finetuning protocol)
    finetune_tasks: list[str] = field(default_factory=lambda: ["masakhaner1", "hedderich", "yosm"])  # downstream tasks
    finetune_langs: list[str] = field(default_factory=lambda: ["hau", "yor"])  # downstream languages
    finetune_seeds: list[int] = field(default_factory=lambda: [1])  # finetuning seeds per model
    alpha: float = 0.05  # significance level of every test in the verdict (after Holm across strategies)
    sesoi: float = 0.02  # smallest effect of interest (nats of mean validation loss): TOST equivalence bound
    gate_margin: float = 0.3  # the control must end this many nats below the unigram baseline in every language
    shard: str = "0/1"  # i/n: run only runs i, i+n, i+2n, ... of each grid (split across machines)
    nice: int = 0  # os.nice increment for the run subprocesses (share a busy machine)
    jobs: int = 0  # runs at once on this machine; 0 = one per CPU core on CPU (the CPU preset trains on one thread), one on a GPU
    analyse: bool = True  # write analysis.md, analysis.json, results.csv and figures after the grid
    analyse_only: bool = False  # skip running; analyse the runs already on disk
    examples: int = 2  # highest and lowest scored blocks shown per strategy

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigError(f"strategies: unknown {unknown} (known: {', '.join(STRATEGIES)})")
        if self.control not in self.strategies:
            raise ConfigError(f"control={self.control!r} must be one of strategies={self.strategies}")
        if self.parity_from and self.parity_from not in self.strategies:
            raise ConfigError(f"parity_from={self.parity_from!r} must be one of strategies={self.strategies} or empty")
        for name in ("seeds", "noise_seeds"):
            seeds = getattr(self, name)
            if not seeds or len(set(seeds)) != len(seeds):
                raise ConfigError(f"{name} must be distinct and non-empty, got {seeds}")
        if self.parity_steps < 0:
            raise ConfigError(f"parity_steps must be >= 0, got {self.parity_steps}")
        if not 0 <= self.noise_share <= 0.9:
            raise ConfigError(f"noise_share must be in [0, 0.9] (0 = no positive-control grid), got {self.noise_share}")
        if not 0 < self.alpha < 1 or self.sesoi <= 0 or self.gate_margin < 0:
            raise ConfigError(
                "need 0 < alpha < 1, sesoi > 0 and gate_margin >= 0, got "
                f"alpha={self.alpha}, sesoi={self.sesoi}, gate_margin={self.gate_margin}"
            )
        self.shard_index, self.shard_count = parse_shard(self.shard)
        for name in ("overrides", "gpu_overrides", "noise_overrides"):
            for item in getattr(self, name):
                key = str(item).split("=", 1)[0]
                if "=" not in str(item):
                    raise ConfigError(f"{name}: {item!r} is not key=value")
                if key in PER_RUN_SETTINGS or key in ("corpus_dir", "tokenizer_dir", "data.langs", "data.noise_share"):
                    raise ConfigError(f"{name}: {key} is set by the study itself, per run or from its own settings")

    @property
    def parity_arm(self) -> str | None:
        return f"{self.control}{PARITY}" if self.parity_from else None


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"shard must look like i/n (e.g. 0/2), got {text!r}") from None
    if not 0 <= index < count:
        raise ConfigError(f"shard={text}: need 0 <= i < n")
    return index, count


@dataclass(frozen=True)
class RunSpec:
    """One cell of a grid: a pretraining run and its finetuning."""

    arm: str  # the strategy, or `<control>+parity`
    strategy: str  # the selection strategy the run uses
    seed: int
    out_dir: Path
    pretrain_args: tuple[str, ...]
    finetune_args: tuple[str, ...] = ()  # empty: not finetuned
    grid: str = "main"  # main | noise (the positive control)

    @property
    def name(self) -> str:
        return self.out_dir.name


def run_name(arm: str, seed: int) -> str:
    return f"{arm}-seed{seed}"


def resolve_preset(cfg: StudyConfig, cuda: bool | None = None) -> tuple[str, list[str]]:
    """(pretrain preset, overrides for every run): `auto` = study on CPU, gpu_preset on CUDA."""
    if cfg.preset != "auto":
        return cfg.preset, list(cfg.overrides)
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return (cfg.gpu_preset, [*cfg.gpu_overrides, *cfg.overrides]) if cuda else ("study", list(cfg.overrides))


def study_langs(cfg: StudyConfig, log=print) -> list[str]:
    present = set(corpus.list_languages(cfg.corpus_dir))
    langs = [lang for lang in cfg.langs if lang in present]
    missing = [lang for lang in cfg.langs if lang not in present]
    if missing:
        log(f"[study] not in {cfg.corpus_dir}, left out of every run: {', '.join(missing)}")
    if not langs:
        raise ConfigError(
            f"langs={cfg.langs}: none is in corpus_dir={cfg.corpus_dir} (it has {', '.join(sorted(present))})"
        )
    return langs


def _spec(
    cfg: StudyConfig,
    shared: list[str],
    grid: str,
    arm: str,
    strategy: str,
    seed: int,
    extra: tuple[str, ...] = (),
    finetune: bool = True,
) -> RunSpec:
    out = Path(cfg.out_dir) / GRIDS[grid] / run_name(arm, seed)
    pretrain = (
        *shared,
        *extra,
        f"out_dir={out}",
        f"selection.strategy={strategy}",
        f"selection.seed={seed}",
        f"train.seed={seed}",
    )
    tuned = ()
    if finetune and cfg.finetune:
        tuned = (
            "--preset",
            cfg.finetune_preset,
            f"model={out / 'final'}",
            f"data_dir={cfg.data_dir}",
            f"out_dir={out / 'finetune'}",
            f"tasks=[{','.join(cfg.finetune_tasks)}]",
            f"langs=[{','.join(cfg.finetune_langs)}]",
            f"seeds=[{','.join(str(s) for s in cfg.finetune_seeds)}]",
        )
    return RunSpec(arm, strategy, seed, out, pretrain, tuned, grid)


def _shared(cfg: StudyConfig, langs: list[str], cuda: bool | None) -> list[str]:
    preset, overrides = resolve_preset(cfg, cuda)
    return [
        "--preset",
        preset,
        f"corpus_dir={cfg.corpus_dir}",
        f"tokenizer_dir={cfg.tokenizer_dir}",
        f"data.cache_dir={Path(cfg.out_dir) / 'cache'}",
        f"data.langs=[{','.join(langs)}]",
        *overrides,
    ]


def plan(cfg: StudyConfig, langs: list[str], cuda: bool | None = None) -> list[RunSpec]:
    """Every run of the main grid, strategy-major, then the positive-control grid. In the main grid
    only strategy and seed differ between runs."""
    shared = _shared(cfg, langs, cuda)
    specs = [_spec(cfg, shared, "main", s, s, seed) for s in cfg.strategies for seed in cfg.seeds]
    if cfg.noise_share:
        extra = (f"data.noise_share={cfg.noise_share}", *cfg.noise_overrides)
        specs += [
            _spec(cfg, shared, "noise", s, s, seed, extra, finetune=False)
            for s in cfg.strategies
            for seed in cfg.noise_seeds
        ]
    return specs


def measure_parity_steps(cfg: StudyConfig) -> dict | None:
    """The parity arm's extra steps: round(mean scoring seconds of the `parity_from` runs / their mean
    seconds per training step), each read from the run's last timing.jsonl line (seconds per step =
    (elapsed − scoring) / steps). None until every `parity_from` run of the grid is complete.
    `parity_steps` > 0 replaces the measurement."""
    if cfg.parity_steps:
        return {"extra_steps": cfg.parity_steps, "source": "parity_steps setting"}
    scoring, per_step = [], []
    for seed in cfg.seeds:
        folder = Path(cfg.out_dir) / GRIDS["main"] / run_name(cfg.parity_from, seed)
        manifest = read_manifest(folder)
        timing = read_timing(folder / TIMING) if (folder / TIMING).exists() else []
        if manifest is None or not timing:
            return None
        last = timing[-1]
        steps = manifest.get("summary", {}).get("steps") or last["step"]
        scoring.append(float(last["scoring_s"]))
        per_step.append((float(last["elapsed_s"]) - float(last["scoring_s"])) / steps)
    seconds, step_s = statistics.fmean(scoring), statistics.fmean(per_step)
    return {
        "extra_steps": round(seconds / step_s) if step_s > 0 else 0,
        "source": f"{cfg.parity_from} runs",
        "scoring_s": round(seconds, 3),
        "seconds_per_step": round(step_s, 6),
        "runs": len(scoring),
    }


def plan_parity(cfg: StudyConfig, langs: list[str], extra_steps: int, cuda: bool | None = None) -> list[RunSpec]:
    """The compute-parity arm: the control's selection with `extra_steps` more training steps."""
    shared = _shared(cfg, langs, cuda)
    base = _spec(cfg, shared, "main", cfg.control, cfg.control, cfg.seeds[0])
    steps = pretrain_config(base).train.max_steps + extra_steps
    return [
        _spec(cfg, shared, "main", cfg.parity_arm, cfg.control, seed, (f"train.max_steps={steps}",))
        for seed in cfg.seeds
    ]


def pretrain_config(spec: RunSpec):
    from pretrain import train

    return train.load_run_config(train.parse_args(list(spec.pretrain_args)))


def pretrain_is_complete(spec: RunSpec) -> bool:
    """The pretraining run's own skip test (pretrain.train): manifest, settings, inputs, outputs."""
    from pretrain.runlog import result_settings  # imports torch

    cfg = pretrain_config(spec)
    inputs = {"corpus_hash": corpus.corpus_hash(cfg.corpus_dir), "tokenizer_hash": tokenizer_hash(cfg.tokenizer_dir)}
    return manifest_is_current(spec.out_dir, result_settings(config_to_dict(cfg)), inputs)


def finetune_key(spec: RunSpec) -> str:
    """What the finetuning results depend on: its arguments and the pretrained model's manifest."""
    manifest = read_manifest(spec.out_dir) or {}
    return sha256_json({"args": list(spec.finetune_args), "model": manifest.get("outputs", {})})


def finetune_is_complete(spec: RunSpec) -> bool:
    record = spec.out_dir / "finetune" / FINETUNE_RECORD
    if not record.exists() or not (spec.out_dir / "finetune" / "results.csv").exists():
        return False
    return json.loads(record.read_text(encoding="utf-8")).get("key") == finetune_key(spec)


def _subprocess(module: str, args: tuple[str, ...], log_path: Path, nice: int) -> int:
    """Run `python -m module args` (own process: memory and threads freed after each run)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write(f"$ python -m {module} {' '.join(args)}\n")
        handle.flush()
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )
    return proc.returncode


def _run_step(spec: RunSpec, cfg: StudyConfig, what: str, module: str, args, log_name: str, log) -> bool:
    """One step of a run in its own process; False (naming its log) when it failed."""
    log_path = spec.out_dir / log_name
    log(f"[study] {spec.name}: {what} (log: {log_path})")
    code = _subprocess(module, args, log_path, cfg.nice)
    if code != 0:
        log(f"[study] {spec.name}: {what} failed (exit {code}); see {log_path}")
    return code == 0


def execute(spec: RunSpec, cfg: StudyConfig, log=print) -> bool:
    """Pretrain then finetune one run unless complete; False when a step failed (named in the log)."""
    started = time.perf_counter()
    if pretrain_is_complete(spec):
        log(f"[study] {spec.name}: pretraining complete, skipped")
    elif not _run_step(spec, cfg, "pretraining", "pretrain.train", spec.pretrain_args, "pretrain.log", log):
        return False
    if spec.finetune_args:
        if finetune_is_complete(spec):
            log(f"[study] {spec.name}: finetuning complete, skipped")
        elif _run_step(spec, cfg, "finetuning", "finetune.run", spec.finetune_args, "finetune.log", log):
            write_json(
                spec.out_dir / "finetune" / FINETUNE_RECORD,
                {"key": finetune_key(spec), "args": list(spec.finetune_args)},
            )
        else:
            return False
    log(f"[study] {spec.name}: done in {time.perf_counter() - started:.0f} s")
    return True


def job_count(cfg: StudyConfig, cuda: bool | None = None) -> int:
    """Runs at once: `jobs`, else one per core on CPU and one on a GPU (a run fills it)."""
    if cfg.jobs:
        return cfg.jobs
    return 1 if resolve_preset(cfg, cuda)[0] == cfg.gpu_preset else max(1, os.cpu_count() or 1)


def build_shared_cache(spec: RunSpec, log) -> None:
    """Build the token-block cache the runs share, before they start side by side (else each of
    the first runs would tokenize the whole corpus itself)."""
    from transformers import AutoTokenizer

    from pretrain.data import run_block_cache

    cfg = pretrain_config(spec)
    run_block_cache(cfg, AutoTokenizer.from_pretrained(str(cfg.tokenizer_dir)), cfg.tokenizer_dir, log)


def _execute_all(specs: list[RunSpec], cfg: StudyConfig, what: str, log) -> list[str]:
    """Run this shard's share of `specs`, `job_count` at a time; the names of those that failed."""
    mine = specs[cfg.shard_index :: cfg.shard_count]
    jobs = min(job_count(cfg), max(1, len(mine)))
    log(f"[study] {what}: {len(specs)} runs; this shard ({cfg.shard}) runs {len(mine)}, {jobs} at a time")

    lock = threading.Lock()

    def log_line(line: str) -> None:  # whole lines from concurrent runs
        with lock:
            log(line)

    def one(numbered: tuple[int, RunSpec]) -> str | None:
        i, spec = numbered
        log_line(f"[study] run {i}/{len(mine)}: {spec.name}")
        return None if execute(spec, cfg, log_line) else spec.name

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is its own process; threads only wait
        return [name for name in pool.map(one, enumerate(mine, 1)) if name]


def run(cfg: StudyConfig, log=print) -> int:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "study-config.json", config_to_dict(cfg))
    failed = []
    if not cfg.analyse_only:
        langs = study_langs(cfg, log)
        log(
            f"[study] {len(cfg.strategies)} strategies x {len(cfg.seeds)} seeds, preset {resolve_preset(cfg)[0]}, "
            f"languages {', '.join(langs)}"
        )
        specs = plan(cfg, langs)
        if job_count(cfg) > 1:
            build_shared_cache(specs[0], log)
        failed += _execute_all([s for s in specs if s.grid == "main"], cfg, "main grid", log)
        later = [s for s in specs if s.grid == "noise"]  # run beside the parity arm: both cores stay busy
        later_what = f"positive control (noise_share {cfg.noise_share:g})"
        if cfg.parity_from:
            parity = measure_parity_steps(cfg)
            if parity is None:
                log(
                    f"[study] {cfg.parity_arm}: waits until every {cfg.parity_from} run is complete; "
                    "run the same command again then"
                )
            else:
                write_json(out / PARITY_RECORD, parity)
                log(f"[study] {cfg.parity_arm}: {parity['extra_steps']} extra steps ({parity['source']})")
                later = plan_parity(cfg, langs, parity["extra_steps"]) + later
                later_what = f"{cfg.parity_arm} and {later_what}"
        if later:
            failed += _execute_all(later, cfg, later_what, log)
    if cfg.analyse:
        from study.analysis import analyse

        analyse(cfg, log=log)
    if failed:
        log(f"[study] failed runs: {', '.join(failed)}; rerun the same command to retry them")
        return 1
    return 0


COMMAND = Command(StudyConfig, "python -m study", __doc__)


def main(argv=None) -> int:
    return COMMAND.run(argv, lambda cfg, args: run(cfg))


if __name__ == "__main__":
    sys.exit(main())
