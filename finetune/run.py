"""Finetune and evaluate model folders on NER, topic and sentiment tasks.

    python -m finetune.run model=out/pretrain/tiny-loss/final data_dir=../shared/data
        out_dir=out/finetune/tiny-loss [tasks=[masakhaner1,yosm]] [langs=[hau]] [seeds=[1,2,3]]

Without `--preset`/`--config` the `tiny` preset is used (CPU-sized, what `make finetune`
runs); `--preset default` gives the real-run settings. Writes results.csv, summary.csv,
results.md, config.yaml, per-run results/predictions under runs/, and manifest.json last.
A run whose result.json matches its settings and inputs is reused, so adding a seed or a
task reruns only what is new; the whole stage is skipped when its manifest is current.

    torchrun --nproc_per_node=4 -m finetune.run ...   # data parallel: one GPU a process

Every process trains (train.batch_size is split between them); only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import yaml

from common.cli import Command
from common.config import ConfigError, config_to_dict
from common.io import (
    atomic_write,
    manifest_is_current,
    sha256_file,
    sha256_json,
    write_json,
    write_jsonl_gz,
    write_manifest,
)
from common.eval_sets import TaskSpec, builtin_task_names, resolve, task_registry as registry_of
from finetune.config import FinetuneConfig
from finetune.data import DataError, load_task
from finetune.metrics import MAIN_METRIC
from finetune.model import check_model_folder
from finetune.provenance import cleaning_record, uncleaned
from finetune.results import result_row, write_tables
from finetune.train import Encoded, Placement, broadcast, finetune_once, setup_placement, teardown_placement

log = logging.getLogger("finetune")
PACKAGE_DIR = Path(__file__).resolve().parent
PRESETS = PACKAGE_DIR / "presets"


# --- configuration -------------------------------------------------------------------------

COMMAND = Command(
    FinetuneConfig,
    "python -m finetune.run",
    __doc__,
    presets=PRESETS,
    default_preset="tiny",
    extra_help=lambda: "tasks: " + ", ".join(builtin_task_names()),
)


def task_registry(cfg: FinetuneConfig) -> dict[str, TaskSpec]:
    """Built-in evaluation sets plus the user's (a user task may replace a built-in one)."""
    try:
        return registry_of(cfg.tasks_file, cfg.custom_tasks)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from None


def plan_runs(cfg: FinetuneConfig, registry: dict[str, TaskSpec]) -> list[tuple[TaskSpec, str]]:
    unknown = [t for t in cfg.tasks if t not in registry]
    if unknown:
        raise ConfigError(
            f"tasks: unknown task(s) {unknown}; known: {sorted(registry)} (or define them under custom_tasks)"
        )
    plan = []
    for name in cfg.tasks:
        task = registry[name]
        langs = [l for l in task.langs if not cfg.langs or l in cfg.langs]
        if not langs:
            log.warning("task %s: none of langs=%s (it has %s); skipped", name, cfg.langs, task.langs)
        plan.extend((task, lang) for lang in langs)
    if not plan:
        raise ConfigError(f"nothing to run: tasks={cfg.tasks} x langs={cfg.langs}")
    return plan


# --- inputs and identity -----------------------------------------------------------------------


def model_tag(path: str) -> str:
    """`out/pretrain/tiny-loss/final` -> `tiny-loss/final`: the folder name alone says little."""
    p = Path(path).resolve()
    generic = p.name in {"final", "best", "model", "last"} or p.name.startswith("checkpoint")
    return f"{p.parent.name}/{p.name}" if generic else p.name


def model_hash(path: Path) -> str:
    return sha256_json({f.name: sha256_file(f) for f in sorted(path.iterdir()) if f.is_file()})


def task_files(task: TaskSpec, lang: str, data_dir: Path) -> list[Path]:
    langs = [lang] + task.zero_shot_train.get(lang, [])
    files = []
    for split, template in task.files.items():
        if task.reader_for(split).hub_id:
            continue
        for l in langs if split == "train" else [lang]:
            files.append(resolve(data_dir, template, l))
    if task.labels_file:
        files.append(resolve(data_dir, task.labels_file, lang))
    return files


def hash_inputs(cfg: FinetuneConfig, plan, models: list[Path]) -> dict[str, str]:
    inputs = {f"model:{m}": model_hash(m) for m in models}
    for task, lang in plan:
        for path in task_files(task, lang, cfg.data_dir):
            if not path.exists():
                raise DataError(f"{path}: file not found (task {task.name}, {lang})")
            inputs[str(path)] = sha256_file(path)
    return inputs


def warn_uncleaned(cfg: FinetuneConfig, plan, models: list[str]) -> None:
    """A warning per model and task whose dev/test text its pretraining corpus was not cleaned of."""
    for model in models:
        record, where = cleaning_record(model)
        if record is None:
            log.info(
                "%s: cannot tell which evaluation sets its pretraining corpus was cleaned against: %s", model, where
            )
            continue
        for task, lang in plan:
            files = uncleaned(record, task, lang, cfg.data_dir)
            if files:
                log.warning(
                    "%s: its pretraining corpus %s was not cleaned against %s %s (%s); scores may "
                    "be inflated by test text seen in pretraining (rerun the corpus stage with this "
                    "set registered: tasks_file)",
                    model,
                    where,
                    task.name,
                    lang,
                    ", ".join(files),
                )


# --- running ----------------------------------------------------------------------------------


def run_dir(cfg: FinetuneConfig, model: str, task: str, lang: str, seed: int) -> Path:
    return cfg.out_dir / "runs" / model_tag(model).replace("/", "--") / task / lang / f"seed{seed}"


def train_identity(train, place=None) -> dict:
    """The training settings a result depends on, with the placement that actually ran.

    On one CPU process device and bf16 change nothing, so they are left out (results made
    before these settings existed stay reusable); on CUDA the device, the effective bf16 and
    the number of processes change the numbers, so they are part of it.
    """
    identity = {k: v for k, v in config_to_dict(train).items() if k not in ("device", "bf16")}
    if place is not None and (place.device.type != "cpu" or place.world > 1):
        identity.update(device=place.device.type, bf16=place.bf16, world=place.world)
    return identity


def run_key(cfg: FinetuneConfig, task: TaskSpec, lang: str, seed: int, inputs: dict, model: Path, place=None) -> str:
    files = {str(p): inputs.get(str(p)) for p in task_files(task, lang, cfg.data_dir)}
    return sha256_json(
        {
            "train": train_identity(cfg.train, place),
            "task": config_to_dict(task),
            "lang": lang,
            "seed": seed,
            "skip_bad_rows": cfg.skip_bad_rows,
            "model": inputs[f"model:{model}"],
            "files": files,
        }
    )


def _previous(path: Path, key: str) -> dict | None:
    result = path / "result.json"
    if not result.exists():
        return None
    data = json.loads(result.read_text(encoding="utf-8"))
    return data if data.get("run_key") == key else None


def run_task(
    cfg, checked, task: TaskSpec, lang: str, inputs: dict, rows: list[dict], progress: str, place=None
) -> None:
    """All seeds of one (model, task, language); reuses finished runs."""
    place = place or Placement()
    todo, reused = [], {}
    for seed in cfg.seeds:
        path = run_dir(cfg, str(checked.path), task.name, lang, seed)
        key = run_key(cfg, task, lang, seed, inputs, checked.path, place)
        previous = _previous(path, key)
        if previous:
            reused[seed] = previous["row"]
        else:
            todo.append((seed, path, key))
    # Rank 0's view decides, so every process trains the same runs in step.
    todo, reused = broadcast(place, (todo, reused))
    for seed, row in reused.items():
        log.info(
            "%s seed %d: reusing %s",
            progress,
            seed,
            run_dir(cfg, str(checked.path), task.name, lang, seed) / "result.json",
        )
        rows.append(row)
    if not todo:
        return
    caps = {
        "train": cfg.train.max_train_examples,
        "dev": cfg.train.max_dev_examples,
        "test": cfg.train.max_test_examples,
    }
    data = load_task(task, lang, cfg.data_dir, cfg.skip_bad_rows, caps)
    sizes = {s: len(d.dataset) for s, d in data.splits.items()}
    counts = {s: d.counts for s, d in data.splits.items()}
    log.info("%s: %s; labels %s; rows %s", progress, data.setting, data.labels, sizes)
    encoded = {s: Encoded(data, s, checked, cfg.train) for s in data.splits}
    metric = MAIN_METRIC[task.kind]
    for seed, path, key in todo:
        out = finetune_once(checked, data, encoded, cfg.train, seed, f"{progress} seed {seed}", place)
        row = result_row(
            task.name, lang, model_tag(str(checked.path)), seed, data.setting, metric, out, cfg.train.epochs, sizes
        )
        log.info(
            "%s seed %d: test %s %.2f (best dev epoch %d, %.1fs)",
            progress,
            seed,
            metric,
            row["test_score"],
            out.best_epoch,
            out.seconds,
        )
        rows.append(row)
        if not place.main:
            continue
        if cfg.save_predictions:
            write_jsonl_gz(path / "test_predictions.jsonl.gz", _prediction_records(data, out))
        write_json(
            path / "result.json",
            {
                "run_key": key,
                "row": row,
                "dev_by_epoch": out.dev_scores,
                "dev": out.dev,
                "test": out.test,
                "labels": data.labels,
                "data_counts": counts,
                "bad_rows": {s: d.bad_examples for s, d in data.splits.items() if d.bad_examples},
                "sources": {s: d.sources for s, d in data.splits.items()},
                "device": out.device,
                "bf16": place.bf16,
                "processes": place.world,
            },
        )


def _prediction_records(data, out):
    test = data.splits["test"].dataset
    if data.task.kind == "ner":
        for words, gold, pred, line in zip(test["words"], test["labels"], out.test_predictions, test["line"]):
            yield {"line": line, "words": words, "gold": gold, "pred": pred}
    else:
        for gold, pred, line in zip(test["label"], out.test_predictions, test["line"]):
            yield {"line": line, "gold": gold, "pred": pred}


def setup_logging(out_dir: Path, main: bool = True) -> None:
    """Progress to stdout and log.txt; other data-parallel processes only report warnings."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    log.handlers.clear()
    log.propagate = False
    if not main:
        log.setLevel(logging.WARNING)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        log.addHandler(handler)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(out_dir / "log.txt")):
        handler.setFormatter(fmt)
        log.addHandler(handler)


def run(cfg: FinetuneConfig) -> int:
    models = cfg.model_dirs()
    if not models:
        raise ConfigError("model: give a model folder (model=path/to/hf-folder)")
    place = setup_placement(cfg.train)  # an unusable train.device stops here, before any work
    try:
        return _run(cfg, models, place)
    finally:
        teardown_placement(place)


def _run(cfg: FinetuneConfig, models: list[str], place) -> int:
    setup_logging(cfg.out_dir, place.main)
    registry = task_registry(cfg)
    plan = plan_runs(cfg, registry)
    # Every model folder is checked before any training starts.
    checked = [check_model_folder(m, cfg.train.max_length) for m in models]
    if place.main:
        warn_uncleaned(cfg, plan, models)
    inputs = hash_inputs(cfg, plan, [c.path for c in checked])
    resolved = config_to_dict(cfg)
    stage_config = {k: v for k, v in resolved.items() if k not in ("force", "out_dir")}
    current = not cfg.force and manifest_is_current(cfg.out_dir, stage_config, inputs)
    if broadcast(place, current):
        if place.main:
            print(f"finetune: skipped, {cfg.out_dir}/manifest.json is current (force=true to rerun)")
        return 0
    if place.main:
        with atomic_write(cfg.out_dir / "config.yaml") as handle:
            yaml.safe_dump(resolved, handle, allow_unicode=True, sort_keys=False)
    log.info(
        "finetune: device %s%s, %d process(es)", place.device, " with bf16 autocast" if place.bf16 else "", place.world
    )
    started, cpu_started = time.time(), time.process_time()
    rows: list[dict] = []
    header = (
        "# Finetuning results\n\nModels: "
        + ", ".join(model_tag(m) for m in models)
        + f"; seeds {cfg.seeds}; config: config.yaml"
    )
    total = len(checked) * len(plan)
    for i, model in enumerate(checked):
        if model.max_length < cfg.train.max_length:
            log.info("%s: windows of %d sub-tokens (model limit)", model.path, model.max_length)
        for j, (task, lang) in enumerate(plan):
            progress = f"[{i * len(plan) + j + 1}/{total}] {model_tag(str(model.path))} {task.name}/{lang}"
            run_task(cfg, model, task, lang, inputs, rows, progress, place)
            if place.main:
                write_tables(cfg.out_dir, rows, header)  # partial tables are visible as we go
    if not place.main:
        return 0
    outputs = write_tables(cfg.out_dir, rows, header)
    write_manifest(
        cfg.out_dir,
        "finetune",
        stage_config,
        inputs,
        outputs + [cfg.out_dir / "config.yaml"],
        extra={
            "seconds": round(time.time() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "runs": len(rows),
        },
    )
    # CPU time as well as wall time: on a shared machine wall time says little.
    log.info(
        "finetune: %d runs in %.0fs wall, %.0fs CPU; %s",
        len(rows),
        time.time() - started,
        time.process_time() - cpu_started,
        cfg.out_dir / "results.md",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: run(cfg))


if __name__ == "__main__":
    sys.exit(main())
