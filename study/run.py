"""Does self-active selection work? A seeded grid of pretraining runs that differ only in the
selection strategy (issue 9), each finetuned with the issue-5 protocol, then analysed.

    python -m pretrain.study corpus_dir=out/corpus tokenizer_dir=out/tokenizer out_dir=out/study
    python -m pretrain.study ... shard=0/2     # this machine runs runs 0, 2, 4, ...; another shard=1/2
    python -m pretrain.study ... analyse_only=true   # tables and figures from the runs on disk

Every run gets the same pretraining preset and settings (same steps x batch x block: equal
training tokens; same `candidates_per_round`: equal scoring budget, reported separately), so
the resolved configs differ only in `selection.strategy`, `selection.seed`, `train.seed` and
`out_dir`. A run whose pretraining manifest and finetuning record are current is skipped, so a
study can be stopped, continued later, or split across machines (then copy the run folders
into one `out_dir/runs/` and run `analyse_only=true`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import corpus
from common.config import ConfigError, config_to_dict, load_config
from common.io import read_manifest, sha256_json, write_json
from pretrain.strategies import STRATEGIES as REGISTRY

STRATEGIES = tuple(REGISTRY)  # the arms: every registered selection strategy
# Settings allowed to differ between the runs of a study (test_study: equal budgets).
PER_RUN_SETTINGS = frozenset({"selection.strategy", "selection.seed", "train.seed", "out_dir"})
FINETUNE_RECORD = "study-finetune.json"


@dataclass
class StudyConfig:
    """One study: inputs, the grid, the pretraining preset, the finetuning protocol."""

    corpus_dir: Path = Path("out/corpus")  # corpus stage output (docs/interfaces.md)
    tokenizer_dir: Path = Path("out/tokenizer")  # tokenizer stage output
    data_dir: Path = Path("../shared/data")  # evaluation sets for finetuning (data_dir/eval)
    out_dir: Path = Path("out/study")  # runs/<strategy>-seed<k>/, cache/, analysis files
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # selection strategies compared
    control: str = "random"  # the strategy every other one is compared with
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])  # pretraining seeds (train.seed = selection.seed)
    langs: list[str] = field(default_factory=lambda: ["amh", "hau", "ibo", "pcm", "som", "swa", "yor"])  # pretraining languages; those absent from the corpus are left out (printed)
    preset: str = "auto"  # pretrain preset; auto = `study` on CPU, gpu_preset when CUDA is visible
    gpu_preset: str = "study_gpu"  # the preset `auto` picks on a GPU (its arithmetic is in its comments)
    gpu_overrides: list[str] = field(default_factory=list)  # applied with gpu_preset by `auto`
    overrides: list[str] = field(default_factory=list)  # extra pretrain key=value settings, the same for every run
    finetune: bool = True  # finetune every run's final model (issue 5's finetune.run)
    finetune_preset: str = "tiny"  # finetune preset (protocol of issue 5)
    finetune_tasks: list[str] = field(default_factory=lambda: ["masakhaner1", "hedderich", "yosm"])  # downstream tasks
    finetune_langs: list[str] = field(default_factory=lambda: ["hau", "yor"])  # downstream languages
    finetune_seeds: list[int] = field(default_factory=lambda: [1])  # finetuning seeds per model
    shard: str = "0/1"  # i/n: run only runs i, i+n, i+2n, ... of the grid (split across machines)
    nice: int = 0  # os.nice increment for the run subprocesses (share a busy machine)
    analyse: bool = True  # write study.md, study.csv and figures after the grid
    analyse_only: bool = False  # skip running; analyse the runs already on disk
    examples: int = 2  # highest and lowest scored blocks shown per strategy

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigError(f"strategies: unknown {unknown} (known: {', '.join(STRATEGIES)})")
        if self.control not in self.strategies:
            raise ConfigError(f"control={self.control!r} must be one of strategies={self.strategies}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")
        self.shard_index, self.shard_count = parse_shard(self.shard)
        for item in [*self.overrides, *self.gpu_overrides]:
            key = str(item).split("=", 1)[0]
            if "=" not in str(item):
                raise ConfigError(f"overrides: {item!r} is not key=value")
            if key in PER_RUN_SETTINGS or key in ("corpus_dir", "tokenizer_dir", "data.langs"):
                raise ConfigError(f"overrides: {key} is set by the study itself, per run or from its own settings")


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
    """One cell of the grid: a pretraining run and its finetuning."""

    strategy: str
    seed: int
    out_dir: Path
    pretrain_args: tuple[str, ...]
    finetune_args: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.out_dir.name


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy}-seed{seed}"


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
        raise ConfigError(f"langs={cfg.langs}: none is in corpus_dir={cfg.corpus_dir} "
                          f"(it has {', '.join(sorted(present))})")
    return langs


def plan(cfg: StudyConfig, langs: list[str], cuda: bool | None = None) -> list[RunSpec]:
    """Every run of the grid, strategy-major. Only strategy and seed differ between runs."""
    preset, overrides = resolve_preset(cfg, cuda)
    runs_dir = Path(cfg.out_dir) / "runs"
    shared = [
        "--preset", preset, f"corpus_dir={cfg.corpus_dir}", f"tokenizer_dir={cfg.tokenizer_dir}",
        f"data.cache_dir={Path(cfg.out_dir) / 'cache'}", f"data.langs=[{','.join(langs)}]", *overrides,
    ]
    specs = []
    for strategy in cfg.strategies:
        for seed in cfg.seeds:
            out = runs_dir / run_name(strategy, seed)
            pretrain = (*shared, f"out_dir={out}", f"selection.strategy={strategy}",
                        f"selection.seed={seed}", f"train.seed={seed}")
            finetune = ("--preset", cfg.finetune_preset, f"model={out / 'final'}", f"data_dir={cfg.data_dir}",
                        f"out_dir={out / 'finetune'}", f"tasks=[{','.join(cfg.finetune_tasks)}]",
                        f"langs=[{','.join(cfg.finetune_langs)}]",
                        f"seeds=[{','.join(str(s) for s in cfg.finetune_seeds)}]")
            specs.append(RunSpec(strategy, seed, out, pretrain, finetune))
    return specs


def pretrain_config(spec: RunSpec):
    from pretrain import train

    return train.load_run_config(train.parse_args(list(spec.pretrain_args)))


def pretrain_is_complete(spec: RunSpec) -> bool:
    """The pretraining run's own skip test (pretrain.train): manifest, settings, inputs, outputs."""
    from common.io import manifest_is_current
    from pretrain.runlog import result_settings
    from pretrain.data import tokenizer_hash

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
        proc = subprocess.run([sys.executable, "-m", module, *args], stdout=handle, stderr=subprocess.STDOUT,
                              env=env, cwd=root, preexec_fn=(lambda: os.nice(nice)) if nice else None)
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
    if cfg.finetune:
        if finetune_is_complete(spec):
            log(f"[study] {spec.name}: finetuning complete, skipped")
        elif _run_step(spec, cfg, "finetuning", "finetune.run", spec.finetune_args, "finetune.log", log):
            write_json(spec.out_dir / "finetune" / FINETUNE_RECORD,
                       {"key": finetune_key(spec), "args": list(spec.finetune_args)})
        else:
            return False
    log(f"[study] {spec.name}: done in {time.perf_counter() - started:.0f} s")
    return True


def run(cfg: StudyConfig, log=print) -> int:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "study-config.json", config_to_dict(cfg))
    failed = []
    if not cfg.analyse_only:
        langs = study_langs(cfg, log)
        specs = plan(cfg, langs)
        mine = specs[cfg.shard_index :: cfg.shard_count]
        log(f"[study] {len(specs)} runs ({len(cfg.strategies)} strategies x {len(cfg.seeds)} seeds), "
            f"preset {resolve_preset(cfg)[0]}, languages {', '.join(langs)}; this shard ({cfg.shard}) runs {len(mine)}")
        for i, spec in enumerate(mine, 1):
            log(f"[study] run {i}/{len(mine)}: {spec.name}")
            if not execute(spec, cfg, log):
                failed.append(spec.name)
    if cfg.analyse:
        from pretrain.study_analysis import analyse

        analyse(cfg, log=log)
    if failed:
        log(f"[study] failed runs: {', '.join(failed)}; rerun the same command to retry them")
        return 1
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    from pretrain.config import field_docs

    rows = field_docs(StudyConfig)
    width = max(len(name) for name, _, _ in rows)
    settings = "\n".join(f"  {name:<{width}}  {doc} (default {default})" for name, default, doc in rows)
    parser = argparse.ArgumentParser(
        prog="python -m pretrain.study", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (override with key=value, e.g. seeds=[1,2] strategies=[random,loss]):\n" + settings)
    parser.add_argument("--config", type=Path, help="YAML file with study settings")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(StudyConfig, args.config, args.overrides)
        return run(cfg)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
