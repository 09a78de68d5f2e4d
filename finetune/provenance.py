"""Was a model's pretraining corpus cleaned against the sets it is evaluated on?

A model folder written by our pretraining sits in a run folder (`<run>/final` or
`<run>/checkpoints/<step>`) whose run.json holds the corpus hash and whose config.yaml names the
corpus folder; that corpus's manifest lists the evaluation files it was cleaned against
(`decontaminated_against`, with their hashes). Scores on a set missing from that list, or on a
file changed since, may be inflated by test text seen in pretraining: finetuning warns.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from common.eval_sets import TaskSpec, split_file
from common.io import read_manifest, sha256_file


def cleaning_record(model_dir: str | Path) -> tuple[dict | None, str]:
    """(the corpus's `decontaminated_against`, its folder) or (None, why it is unknown)."""
    model_dir = Path(model_dir).resolve()
    for run in (model_dir, model_dir.parent, model_dir.parent.parent):
        run_file, config_file = run / "run.json", run / "config.yaml"
        if not (run_file.is_file() and config_file.is_file()):
            continue
        corpus_dir = Path(yaml.safe_load(config_file.read_text(encoding="utf-8")).get("corpus_dir", ""))
        manifest = read_manifest(corpus_dir) if corpus_dir.is_dir() else None
        if manifest is None:
            return None, f"its pretraining corpus {corpus_dir} is no longer there"
        trained_on = json.loads(run_file.read_text(encoding="utf-8")).get("inputs", {}).get("corpus_hash")
        if trained_on != manifest.get("corpus_hash"):
            return None, f"{corpus_dir} has changed since the model was pretrained on it"
        if "decontaminated_against" not in manifest:
            return None, f"its pretraining corpus {corpus_dir} predates the record (rebuild it: make corpus)"
        return manifest["decontaminated_against"], str(corpus_dir)
    return None, "it was not pretrained by this pipeline (no run.json beside it)"


def uncleaned(record: dict, task: TaskSpec, lang: str, data_dir: str | Path) -> list[str]:
    """The dev/test files of `task` in `lang` the corpus was not cleaned against (or since changed)."""
    files = record.get(task.name, {}).get("files", {})
    missing = []
    for split in ("dev", "test"):
        path = split_file(task, lang, split, data_dir)
        if path is not None and path.is_file() and files.get(str(path)) != sha256_file(path):
            missing.append(str(path))
    return missing
