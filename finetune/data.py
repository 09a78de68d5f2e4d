"""Task data as `datasets.Dataset`s: read, relabel, check labels, cap, zero-shot.

Rows flow through `Dataset.from_generator` (local files) or `load_dataset` (a `hub_id`), so a
Hub dataset and a local file look the same to the training code. Label checks: a dev/test label outside the label set is an error naming it (or a row
skipped and counted with `skip_bad_rows=true`); `reader.label_map` is the documented way to
rename or drop labels, and every use of it is counted and logged as a warning.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from common.eval_readers import BadRows, DataError, detect_format, open_text, read_conll, read_table
from common.eval_sets import SPLITS, ReaderSpec, TaskSpec, resolve

log = logging.getLogger("finetune")
datasets.disable_progress_bars()


@dataclass
class SplitData:
    dataset: datasets.Dataset
    """NER: words, labels (str lists), line. Classification: text, label (str), line."""
    sources: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    bad_examples: list[str] = field(default_factory=list)


@dataclass
class TaskData:
    task: TaskSpec
    lang: str
    labels: list[str]
    splits: dict[str, SplitData]
    setting: str
    """`in-language`, `zero-shot from amh`, or the task's note."""
    files: list[Path]


def ner_label_list(seen: set[str]) -> list[str]:
    """`O` then B-/I- of every entity type seen, so a type's I- tag exists even if unseen."""
    types = sorted({label[2:] for label in seen if label != "O"})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


# --- reading one split ------------------------------------------------------------------------


def _relabel(label: str, spec: ReaderSpec, counts: Counter) -> str | None:
    if spec.lowercase_labels:
        label = label.lower()
    if label in spec.label_map:
        new = spec.label_map[label]
        counts[f"label_{label}_dropped" if new is None else f"label_{label}_to_{new}"] += 1
        return new
    return label


def _ner_rows(path: Path, spec: ReaderSpec, allowed: frozenset | None, bad: BadRows, counts: Counter):
    for sent in read_conll(path, counts):
        labels = []
        for label in sent["labels"]:
            new = _relabel(label, spec, counts)
            labels.append("O" if new is None else new)
        unknown = sorted({l for l in labels if allowed is not None and l not in allowed})
        if unknown:
            bad(
                f"{path}:{sent['line']}",
                "unknown_label",
                f"label(s) {unknown} not in the train label set {sorted(allowed)} (map them with reader.label_map)",
            )
            continue
        yield {"words": sent["words"], "labels": labels, "line": sent["line"]}


def _cls_rows(path: Path, spec: ReaderSpec, allowed: frozenset | None, bad: BadRows, counts: Counter):
    for row in read_table(path, spec, bad):
        label = _relabel(row["label"], spec, counts)
        if label is None:
            continue
        if allowed is not None and label not in allowed:
            bad(
                f"{path}:{row['line']}",
                "unknown_label",
                f"label {label!r} is not in the label set {sorted(allowed)} (map it with reader.label_map)",
            )
            continue
        yield {"text": row["text"], "label": label, "line": row["line"]}


def _features(kind: str) -> datasets.Features:
    if kind == "ner":
        return datasets.Features(
            {
                "words": datasets.Sequence(datasets.Value("string")),
                "labels": datasets.Sequence(datasets.Value("string")),
                "line": datasets.Value("int64"),
            }
        )
    return datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.Value("string"), "line": datasets.Value("int64")}
    )


def _from_generator(gen, kwargs: dict, kind: str) -> datasets.Dataset:
    """`Dataset.from_generator` in a throw-away cache, re-raising our own errors unwrapped."""
    with tempfile.TemporaryDirectory(prefix="finetune-ds-") as cache:
        try:
            ds = datasets.Dataset.from_generator(
                gen,
                features=_features(kind),
                gen_kwargs=kwargs,
                cache_dir=cache,
                keep_in_memory=True,
                fingerprint=os.urandom(8).hex(),
            )
        except ValueError as err:
            if "corresponds to no data" not in str(err):
                raise
            ds = datasets.Dataset.from_dict({k: [] for k in _features(kind)}, features=_features(kind))
        except Exception as err:  # datasets wraps generator errors in DatasetGenerationError
            cause = err
            while cause is not None and not isinstance(cause, DataError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause from None
            raise
    return ds


def read_split(
    task: TaskSpec, lang: str, split: str, data_dir: Path, allowed: frozenset | None, skip_bad_rows: bool
) -> SplitData:
    spec = task.reader_for(split)
    if spec.hub_id:
        return load_hub_split(task, spec, split, allowed)
    path = resolve(data_dir, task.files.get(split, ""), lang)
    counts: Counter = Counter()
    examples: list[str] = []
    bad = BadRows(skip_bad_rows, counts, examples)
    if task.kind == "ner" and detect_format(path, spec.format) != "conll":
        raise DataError(f"{path}: NER files must be CoNLL (reader.format: conll)")
    gen = _ner_rows if task.kind == "ner" else _cls_rows
    if not path.exists():
        raise DataError(f"{path}: file not found (task {task.name}, {lang}, {split})")
    ds = _from_generator(gen, {"path": path, "spec": spec, "allowed": allowed, "bad": bad, "counts": counts}, task.kind)
    for key, value in counts.items():
        if key.startswith("label_"):
            log.warning("%s: %s rows (reader.label_map)", path, f"{key}: {value}")
    if any(k.startswith("skipped_") for k in counts):
        log.warning(
            "%s: skipped bad rows %s; e.g. %s",
            path,
            {k: v for k, v in counts.items() if k.startswith("skipped_")},
            examples[:3],
        )
    counts["rows"] = len(ds)
    return SplitData(ds, [str(path)], dict(counts), examples)


# --- the Hub --------------------------------------------------------------------------------


def _hub_reachable(host: str = "huggingface.co", timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_hub_split(task: TaskSpec, spec: ReaderSpec, split: str, allowed: frozenset | None) -> SplitData:
    """A split of a Hub dataset, with its columns renamed to ours. Offline: a clear error."""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "HF_DATASETS_OFFLINE", ""
    ) not in ("", "0")
    where = f"task {task.name}: hub_id {spec.hub_id!r}"
    if not offline and not _hub_reachable():
        raise DataError(
            f"{where}: huggingface.co cannot be reached (no internet?); use local "
            "files, or set HF_HUB_OFFLINE=1 to use a copy already in the HF cache"
        )
    hub_split = spec.hub_split or {"dev": "validation"}.get(split, split)
    try:
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config or None, split=hub_split)
    except Exception as err:
        hint = " (offline: HF_HUB_OFFLINE is set and no cached copy exists)" if offline else ""
        raise DataError(f"{where}, split {hub_split!r} cannot be loaded{hint}: {type(err).__name__}: {err}") from None
    text_col = spec.text_columns[0] if task.kind == "ner" else None
    names = _label_names(ds, spec.label_column)

    def as_str(value):
        return names[value] if names and isinstance(value, int) else str(value)

    rows = []
    for i, row in enumerate(ds):
        if task.kind == "ner":
            words = list(row[text_col])
            labels = [as_str(v) for v in row[spec.label_column]]
            rows.append({"words": words, "labels": labels, "line": i + 1})
        else:
            text = spec.text_join.join(str(row[c]) for c in spec.text_columns)
            rows.append({"text": text, "label": as_str(row[spec.label_column]), "line": i + 1})
    ds = datasets.Dataset.from_list(rows, features=_features(task.kind))
    if allowed is not None:
        key = "labels" if task.kind == "ner" else "label"
        seen = {l for v in ds[key] for l in (v if task.kind == "ner" else [v])}
        if seen - allowed:
            raise DataError(f"{where}: label(s) {sorted(seen - allowed)} not in {sorted(allowed)}")
    return SplitData(ds, [f"hub:{spec.hub_id}/{spec.hub_config}:{hub_split}"], {"rows": len(ds)})


def _label_names(ds: datasets.Dataset, column: str) -> list[str] | None:
    feature = ds.features.get(column)
    inner = getattr(feature, "feature", feature)  # Sequence(ClassLabel) or ClassLabel
    return list(inner.names) if isinstance(inner, datasets.ClassLabel) else None


# --- one task and language ------------------------------------------------------------------


def fixed_labels(task: TaskSpec, lang: str, data_dir: Path) -> list[str] | None:
    if task.labels:
        return list(task.labels)
    if task.labels_file:
        path = resolve(data_dir, task.labels_file, lang)
        with open_text(path) as handle:
            labels = [line.strip() for line in handle if line.strip()]
        if task.reader.lowercase_labels:
            labels = [l.lower() for l in labels]
        return labels
    return None


def _seen_labels(kind: str, ds: datasets.Dataset) -> set[str]:
    if kind == "ner":
        return {l for seq in ds["labels"] for l in seq}
    return set(ds["label"])


def _cap(ds: datasets.Dataset, n: int) -> datasets.Dataset:
    """A fixed sample (seed 0), the same for every model and seed."""
    if n <= 0 or len(ds) <= n:
        return ds
    return ds.shuffle(seed=0).select(range(n)).flatten_indices()


def load_task(
    task: TaskSpec, lang: str, data_dir: Path, skip_bad_rows: bool = False, caps: dict[str, int] | None = None
) -> TaskData:
    """Train, dev and test of one task and language, with a checked label list."""
    caps = caps or {}
    fixed = fixed_labels(task, lang, data_dir)
    allowed = None
    if fixed is not None:
        allowed = frozenset(ner_label_list(set(fixed)) if task.kind == "ner" else fixed)
    train = read_split(task, lang, "train", Path(data_dir), allowed, skip_bad_rows)
    setting = "in-language"
    if len(train.dataset) == 0:
        train, setting = _zero_shot_train(task, lang, data_dir, allowed, skip_bad_rows, train)
    if task.note:
        setting = f"{setting}; {task.note}"
    if fixed is not None:
        labels = ner_label_list(set(fixed)) if task.kind == "ner" else fixed
    else:
        seen = _seen_labels(task.kind, train.dataset)
        labels = ner_label_list(seen) if task.kind == "ner" else sorted(seen)
    if len(labels) < 2:
        raise DataError(f"{train.sources[0]}: fewer than 2 labels in train ({labels})")
    splits = {"train": train}
    for split in ("dev", "test"):
        splits[split] = read_split(task, lang, split, Path(data_dir), frozenset(labels), skip_bad_rows)
        if len(splits[split].dataset) == 0:
            raise DataError(f"{splits[split].sources[0]}: no {split} rows")
    for split in SPLITS:
        cap = caps.get(split, 0)
        if cap and len(splits[split].dataset) > cap:
            splits[split].counts["capped_from"] = len(splits[split].dataset)
            splits[split].dataset = _cap(splits[split].dataset, cap)
    files = [Path(s) for sd in splits.values() for s in sd.sources if not s.startswith("hub:")]
    if task.labels_file:
        files.append(resolve(data_dir, task.labels_file, lang))
    return TaskData(task, lang, labels, splits, setting, files)


def _zero_shot_train(task, lang, data_dir, allowed, skip_bad_rows, empty):
    sources = task.zero_shot_train.get(lang)
    if not sources:
        raise DataError(
            f"{empty.sources[0]}: no train rows for {task.name} {lang}; "
            f"set zero_shot_train: {{{lang}: [other langs]}} in the task"
        )
    parts = [read_split(task, src, "train", Path(data_dir), allowed, skip_bad_rows) for src in sources]
    ds = datasets.concatenate_datasets([p.dataset for p in parts])
    counts = Counter()
    for p in parts:
        counts.update(p.counts)
    merged = SplitData(ds, [s for p in parts for s in p.sources], dict(counts))
    return merged, f"zero-shot from {'+'.join(sources)}"
