"""Check a run, then assemble and verify the exact folder that goes to the Hub.

Order matters: every consistency check runs first, on the inputs, and
all failures are reported together; only then is the folder built, in a hidden staging
directory beside its final place, and loaded back offline with `AutoTokenizer`,
`AutoModelForMaskedLM` and `pipeline("fill-mask")`, which also chooses the card's fill-mask
example (publish/example.py). Only a folder that passed replaces the previous one (rename), and
the stage's manifest is written last. Nothing here talks to the network.

Layout of `<out_dir>` (default out/publish/<run name>/):
    upload/            exactly what is uploaded: final/ files (weights, config.json, tokenizer),
                       README.md (card), LICENSE.md, training_config.yaml,
                       training_metrics.jsonl, eval_results.csv, report/
    config.yaml        the resolved settings of the last build
    manifest.json      content settings, input hashes, output hashes (written last)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.config import ConfigError, config_to_dict
from common.corpus import list_languages
from common.io import atomic_write, manifest_is_current, sha256_file, write_manifest
from publish.card import (
    CardInputs,
    Result,
    ResultsError,
    build_card,
    evaluated_languages,
    licence_text,
    read_results,
    source_licences,
    training_summary,
)
from publish.config import LANG_CODE, PublishConfig, RunPaths
from publish.example import TOP_K, Example, candidate_texts, choose_example, validation_shards
from tokenizer.artifacts import make_portable

UPLOAD_DIR = "upload"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# Files a training checkpoint may hold that do not belong in a published model; manifest.json
# is pipeline bookkeeping (local paths), the upload folder's own manifest sits beside it.
TRAINING_STATE = ("optimizer", "scheduler", "rng_state", "trainer_state", "training_args", "scaler", "manifest.json")


# Settings that change what is in the upload folder (the manifest's cache key); retry and
# network settings do not, so changing them never rebuilds the folder.
CONTENT_SETTINGS = (
    "folder",
    "repo_id",
    "results",
    "report_dir",
    "data_dir",
    "languages",
    "license",
    "license_name",
    "allow_no_results",
    "sample_text",
    "example_candidates",
)


class PublishRefused(ConfigError):
    """The run cannot be published as it is; `reasons` says why (one line each)."""

    def __init__(self, where: Path, reasons: list[str]) -> None:
        self.reasons = reasons
        bullet = "\n  - ".join(reasons)
        super().__init__(f"refusing to publish {where}:\n  - {bullet}")


@dataclass
class RunCheck:
    """What `check_run` found; everything staging needs."""

    model_files: list[Path] = field(default_factory=list)
    run_config: dict = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    strategy: str = ""
    preset: str = ""
    results: list[Result] = field(default_factory=list)
    report: Path | None = None
    valid_shards: list[Path] = field(default_factory=list)  # where fill-mask example candidates come from
    notes: list[str] = field(default_factory=list)


# ---- checks ----------------------------------------------------------------------------
def _embedding_rows(final: Path) -> int | None:
    """Rows of the input embedding matrix, read from the safetensors header (no weights loaded)."""
    from safetensors import safe_open

    index = final / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        candidates = [(k, final / f) for k, f in weight_map.items()]
    else:
        candidates = [(None, final / "model.safetensors")]
    for key, path in candidates:
        with safe_open(str(path), framework="pt") as handle:
            keys = [key] if key else list(handle.keys())
            for name in keys:
                if name.endswith("word_embeddings.weight"):
                    return int(handle.get_slice(name).get_shape()[0])
    return None


def _check_model(final: Path, reasons: list[str], notes: list[str]) -> None:
    if not final.is_dir():
        reasons.append(f"no final model folder {final} (did pretraining finish?)")
        return
    if not (final / "config.json").is_file():
        reasons.append(f"{final}/config.json is missing")
    has_weights = (final / "model.safetensors").is_file() or (final / "model.safetensors.index.json").is_file()
    if not has_weights:
        reasons.append(f"no safetensors weights in {final} (model.safetensors)")
    missing_tok = [name for name in TOKENIZER_FILES if not (final / name).is_file()]
    if missing_tok:
        reasons.append(f"no tokenizer in {final}: missing {', '.join(missing_tok)}")
    if reasons:
        return
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(final, local_files_only=True)
    except Exception as err:  # any load failure is a reason to refuse, with its message
        reasons.append(f"tokenizer in {final} does not load: {err}")
        return
    vocab_size = json.loads((final / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    rows = _embedding_rows(final)
    if tokenizer.mask_token is None:
        reasons.append(f"tokenizer in {final} has no mask token (fill-mask needs <mask>)")
    if vocab_size is None or rows is None:
        reasons.append(
            f"cannot read the model's vocabulary size (config.json vocab_size={vocab_size}, embedding rows={rows})"
        )
    elif rows != vocab_size:
        reasons.append(f"model config vocab_size={vocab_size} but its embedding matrix has {rows} rows")
    elif len(tokenizer) > vocab_size:
        reasons.append(
            f"vocabulary size differs: tokenizer has {len(tokenizer)} tokens but the model "
            f"only {vocab_size} embeddings (ids >= {vocab_size} would index past the matrix)"
        )
    elif len(tokenizer) < vocab_size:
        notes.append(
            f"model has {vocab_size - len(tokenizer)} embedding rows beyond the tokenizer's "
            f"{len(tokenizer)} tokens (padding); they are never used"
        )


def _read_run_config(run: Path, reasons: list[str]) -> dict:
    path = run / "config.yaml"
    if not path.is_file():
        reasons.append(f"{path} is missing (the run's resolved config)")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        reasons.append(f"{path} is not valid YAML: {err}")
        return {}
    return data if isinstance(data, dict) else {}


def _find(config: dict, *keys: str):
    """First value under any of the dotted `keys` (e.g. `data.langs`)."""
    for dotted in keys:
        node = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, "", []):
            return node
    return None


def _languages(cfg: PublishConfig, run: Path, run_config: dict, reasons: list[str]) -> list[str]:
    # Asked for here, else the run's explicit data.langs, else what it validated on (metrics.jsonl:
    # data.langs=[] trains every corpus language with text), else its corpus folder.
    langs = list(cfg.languages) or _find(run_config, "data.langs", "langs", "languages") or evaluated_languages(run)
    if not langs:
        corpus = _find(run_config, "corpus_dir", "data.corpus_dir")
        if corpus and Path(corpus).is_dir():
            langs = list_languages(corpus)
    if not langs:
        reasons.append(
            "cannot tell the model's languages: the run's config.yaml has no data.langs, its "
            "metrics.jsonl no eval event and its corpus_dir no shards; pass languages=[hau,yor,...]"
        )
        return []
    bad = [code for code in langs if not LANG_CODE.match(str(code))]
    if bad:
        reasons.append(f"languages {bad} are not ISO 639-3 codes")
    return sorted(str(code) for code in langs)


def check_run(cfg: PublishConfig, paths: RunPaths) -> RunCheck:
    """All consistency checks, before anything is built or sent; raises PublishRefused."""
    reasons: list[str] = []
    check = RunCheck()
    if not paths.run.is_dir():
        raise PublishRefused(paths.run, [f"run folder {paths.run} does not exist"])
    _check_model(paths.final, reasons, check.notes)
    check.run_config = _read_run_config(paths.run, reasons)
    check.languages = _languages(cfg, paths.run, check.run_config, reasons)
    preset, _, strategy = paths.name.partition("-")
    check.strategy = str(_find(check.run_config, "selection.strategy", "strategy") or strategy or "unknown")
    check.preset = str(_find(check.run_config, "preset") or preset)
    try:
        check.results = read_results(paths.results, run_name=paths.name)
    except ResultsError as err:
        if not (cfg.allow_no_results and not paths.results.exists()):
            reasons.append(str(err))
    if reasons:
        raise PublishRefused(paths.run, reasons)
    check.model_files = sorted(
        p
        for p in paths.final.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.startswith(TRAINING_STATE)
    )
    check.report = paths.report if paths.report.is_dir() and any(paths.report.iterdir()) else None
    if cfg.example_candidates:
        check.valid_shards = validation_shards(
            _find(check.run_config, "corpus_dir", "data.corpus_dir"), check.languages
        )
    return check


# ---- staging ---------------------------------------------------------------------------
def _inputs(paths: RunPaths, check: RunCheck, data_dir: Path) -> dict[str, str]:
    """sha256 of every input file, keyed by path: the manifest's cache key."""
    files = list(check.model_files) + [paths.run / "config.yaml"]
    files += [
        p for p in (paths.run / "metrics.jsonl", paths.results, Path(data_dir) / "mono" / "SOURCES.tsv") if p.is_file()
    ]
    files += check.valid_shards  # the card's example may come from them
    if check.report is not None:
        files += sorted(p for p in check.report.rglob("*") if p.is_file())
    return {str(p): sha256_file(p) for p in files}


def _fill(dest: Path, cfg: PublishConfig, paths: RunPaths, check: RunCheck) -> None:
    """Write the upload folder's contents, all but the card, into `dest` (an empty staging
    directory); the card needs the example that only the loaded model can choose."""
    for src in check.model_files:
        shutil.copy2(src, dest / src.name)
    # A run from before the tokenizer stage and pretraining wrote a portable class name still
    # publishes a folder that transformers 4.x loads.
    make_portable(dest)
    shutil.copy2(paths.run / "config.yaml", dest / "training_config.yaml")
    if (paths.run / "metrics.jsonl").is_file():
        shutil.copy2(paths.run / "metrics.jsonl", dest / "training_metrics.jsonl")
    if paths.results.is_file():
        shutil.copy2(paths.results, dest / "eval_results.csv")
    if check.report is not None:
        shutil.copytree(check.report, dest / "report")
    (dest / "LICENSE.md").write_text(licence_text(paths.name, source_licences(cfg.data_dir)), encoding="utf-8")


def _write_card(dest: Path, cfg: PublishConfig, paths: RunPaths, check: RunCheck, example: str) -> None:
    card = build_card(
        CardInputs(
            repo_id=cfg.repo_id or f"<namespace>/{paths.name}",
            run_name=paths.name,
            languages=check.languages,
            strategy=check.strategy,
            preset=check.preset,
            results=check.results,
            license=cfg.license,
            license_name=cfg.license_name,
            training=training_summary(paths.run, check.run_config),
            has_report=check.report is not None,
            example=example,
            sources=sorted(source_licences(cfg.data_dir)),
        )
    )
    card.save(dest / "README.md")


def verify_offline(folder: Path, sample_text: str, candidates: list[str]) -> Example:
    """Load `folder` as a user would, without network, and choose the fill-mask example with
    the loaded pipeline; returns it with its raw predictions."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights" bars would bury our progress lines
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True)
        fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
        example = choose_example(fill, sample_text, candidates)
    except Exception as err:
        raise PublishRefused(folder, [f"the staged folder does not load offline: {type(err).__name__}: {err}"]) from err
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    predictions = example.predictions
    if len(predictions) != TOP_K or not all(math.isfinite(p["score"]) for p in predictions):
        raise PublishRefused(folder, [f"fill-mask gave unusable predictions: {predictions}"])
    return example


def verify_card(folder: Path, example: str) -> None:
    """The card parses, has the metadata the Hub needs and shows `example` in its widget."""
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(folder / "README.md")
    except Exception as err:
        raise PublishRefused(folder, [f"the model card does not parse: {type(err).__name__}: {err}"]) from err
    problems = [
        f"model card metadata lacks `{key}`"
        for key in ("language", "license", "pipeline_tag")
        if not card.data.get(key)
    ]
    if [w.get("text") for w in card.data.get("widget") or []] != [example]:
        problems.append(f"model card widget does not show the fill-mask example {example!r}")
    if problems:
        raise PublishRefused(folder, problems)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` with `staging` by renames, so a reader never sees a half-built folder."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def stage(cfg: PublishConfig, paths: RunPaths, log=print) -> Path:
    """Check, build and verify the upload folder; returns it. Skipped when already current."""
    check = check_run(cfg, paths)
    for note in check.notes:
        log(f"publish: note: {note}")
    settings = {k: v for k, v in config_to_dict(cfg).items() if k in CONTENT_SETTINGS}
    inputs = _inputs(paths, check, cfg.data_dir)
    upload = paths.out / UPLOAD_DIR
    if manifest_is_current(paths.out, settings, inputs):
        log(f"publish: {upload} is current (same run files and settings); skipped rebuilding it")
        return upload
    paths.out.mkdir(parents=True, exist_ok=True)
    (paths.out / "manifest.json").unlink(missing_ok=True)  # the old folder is no longer vouched for
    staging = paths.out / f".{UPLOAD_DIR}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _fill(staging, cfg, paths, check)
        log(f"publish: verifying {staging.name} loads offline (AutoTokenizer, AutoModelForMaskedLM, fill-mask)")
        candidates = candidate_texts(check.valid_shards, cfg.example_candidates)
        example = verify_offline(staging, cfg.sample_text, candidates)
        _write_card(staging, cfg, paths, check, example.text)
        verify_card(staging, example.text)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, upload)
    with atomic_write(paths.out / "config.yaml") as handle:  # the resolved settings, beside the output
        yaml.safe_dump(config_to_dict(cfg), handle, sort_keys=False, allow_unicode=True)
    outputs = sorted(p for p in upload.rglob("*") if p.is_file())
    write_manifest(paths.out, "publish", settings, inputs, outputs, extra={"fill_mask_check": example.summary()})
    log(f"publish: {example.describe()}")
    log(f"publish: built {upload} ({len(outputs)} files)")
    return upload
