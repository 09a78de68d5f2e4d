"""The registry of evaluation sets, shared by finetuning and the corpus stage's decontamination.

Every evaluation set is a `TaskSpec`: its kind, languages, the file of each split (relative to
the data folder, `{lang}` filled in) and how to read it. The built-in ones are data, in
common/eval_sets.yaml; a user adds their own in a `tasks_file` (same shape) or inline under
`custom_tasks`. Finetuning trains and scores on them; the corpus stage drops every corpus line
that overlaps one of their dev/test items, so a set declared once is evaluated on a model whose
corpus never saw it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import yaml

from common import uri
from common.config import _from_dict
from common.eval_readers import BadRows, read_conll, read_table

SPLITS = ("train", "dev", "test")
REGISTRY_FILE = Path(__file__).resolve().parent / "eval_sets.yaml"


@dataclass
class ReaderSpec:
    """How to read one split's file (or Hub dataset) into `{words, labels}` / `{text, label}`."""

    format: Literal["auto", "conll", "tsv", "csv", "jsonl"] = "auto"
    """File format; `auto` picks it from the extension (.txt/.conll -> conll, .tsv, .csv, .jsonl/.json)."""
    text_columns: list[str] = field(default_factory=lambda: ["text"])
    """Classification: column(s) holding the text; several are joined with `text_join`."""
    text_join: str = " "
    label_column: str = "label"
    delimiter: str = ""
    """Field delimiter for tsv/csv; empty = TAB for tsv, comma for csv."""
    quoting: Literal["csv", "none"] = "csv"
    """`csv`: double quotes delimit fields (multi-line cells allowed); `none`: quotes are literal."""
    newline: Literal["any", "lf"] = "any"
    """`lf`: records end at `\\n` only, a bare `\\r` stays inside the text (YOSM)."""
    label_map: dict[str, str | None] = field(default_factory=dict)
    """Rename labels before checking them (`old: new`); `old: null` drops those rows (counted)."""
    lowercase_labels: bool = False
    hub_id: str = ""
    """Hugging Face dataset id; when set, the split is loaded with `datasets.load_dataset`."""
    hub_config: str = ""
    hub_split: str = ""

    def __post_init__(self) -> None:
        if not self.text_columns:
            raise ValueError("text_columns must name at least one column")
        if len(self.delimiter) > 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")


@dataclass
class TaskSpec:
    """One evaluation task: a kind, its languages and the files of each split."""

    name: str = ""
    kind: Literal["ner", "classification"] = "classification"
    langs: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """Paths of `train`, `dev`, `test` (relative to data_dir unless absolute); `{lang}` is filled
    in. A split read from the Hub (`reader.hub_id`) needs no path."""
    reader: ReaderSpec = field(default_factory=ReaderSpec)
    split_readers: dict[str, ReaderSpec] = field(default_factory=dict)
    """Per-split reader that replaces `reader` (the out-of-domain task reads YOSM as its test)."""
    labels: list[str] = field(default_factory=list)
    """Fixed label set; empty = the labels seen in train (plus `labels_file` when given)."""
    labels_file: str = ""
    zero_shot_train: dict[str, list[str]] = field(default_factory=dict)
    """For a language with no train rows: which languages' train (and nothing else) to use."""
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a task needs a name")
        missing = [s for s in SPLITS if s not in self.files and not self.reader_for(s).hub_id]
        if missing:
            raise ValueError(f"task {self.name}: files lacks {', '.join(missing)}")
        unknown = sorted(set(self.files) - set(SPLITS)) + sorted(set(self.split_readers) - set(SPLITS))
        if unknown:
            raise ValueError(f"task {self.name}: unknown split(s) {unknown}; use {list(SPLITS)}")
        if not self.langs:
            raise ValueError(f"task {self.name}: langs is empty")

    def reader_for(self, split: str) -> ReaderSpec:
        return self.split_readers.get(split, self.reader)


# --- the registry ---------------------------------------------------------------------------


def _task_dicts(path: Path | str) -> dict[str, dict]:
    with uri.open_read(path) as handle:
        data = yaml.safe_load(handle.read().decode("utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of task name -> {{kind, langs, files, ...}}")
    return data


def builtin_task_names() -> list[str]:
    return list(_task_dicts(REGISTRY_FILE))


def task_registry(
    tasks_file: str | Path | None = None, custom_tasks: list[TaskSpec] | tuple = ()
) -> dict[str, TaskSpec]:
    """Built-in sets, then the user's `tasks_file`, then inline `custom_tasks` (a later entry
    replaces an earlier one of the same name)."""
    registry = {}
    for path in [REGISTRY_FILE] + ([tasks_file] if tasks_file else []):
        if not uri.exists(path):
            raise FileNotFoundError(f"tasks_file: {path} not found")
        for name, spec in _task_dicts(path).items():
            registry[name] = _from_dict(TaskSpec, dict(spec, name=name), f"{path}:{name}")
    for spec in custom_tasks:
        registry[spec.name] = spec
    return registry


def resolve(data_dir: str | Path, template: str, lang: str) -> Path | str:
    """A task's file for one language: `{lang}` filled in, relative to `data_dir` unless absolute
    or a URI. A Path, or a string when it is a URI (`s3://...`)."""
    template = template.replace("{lang}", lang)
    if uri.is_remote(template):
        return template
    path = Path(template).expanduser()
    if path.is_absolute():
        return path
    return uri.join(data_dir, template) if uri.is_remote(data_dir) else Path(data_dir) / path


# --- items, for decontamination -------------------------------------------------------------


@dataclass(frozen=True)
class EvalItem:
    """One dev/test item's text: an NER sentence, a tweet, a headline with its article."""

    eval_set: str
    split: str
    lang: str
    text: str
    where: str  # file:line, for the audit's sample pairs


def split_file(task: TaskSpec, lang: str, split: str, data_dir: str | Path) -> Path | str | None:
    """The local file of a split, or None when the split is read from the Hub."""
    if task.reader_for(split).hub_id or split not in task.files:
        return None
    return resolve(data_dir, task.files[split], lang)


def iter_items(task: TaskSpec, lang: str, split: str, data_dir: str | Path) -> Iterator[EvalItem]:
    """The text of every row of one split (labels are not checked: a row with a label the
    task would refuse is still text a model must not have seen)."""
    path = split_file(task, lang, split, data_dir)
    if path is None:
        return
    if task.kind == "ner":
        for sent in read_conll(path):
            yield EvalItem(task.name, split, lang, " ".join(sent["words"]), f"{path}:{sent['line']}")
        return
    bad = BadRows(skip=True, counts=Counter(), examples=[])
    for row in read_table(path, task.reader_for(split), bad):
        yield EvalItem(task.name, split, lang, row["text"], f"{path}:{row['line']}")
