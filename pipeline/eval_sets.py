"""Read the text items of the evaluation sets (for decontamination), each in its own format.

Layouts and quirks (see each set's FORMAT.txt / README under <eval_dir>):
- masakhaner1, masakhaner2: `<lang>/<split>.txt` (masakhaner2 train: `train.txt.gz`), CoNLL
  `token label` lines, blank line between sentences; an item is one sentence's tokens.
- masakhanews: `<lang>/<split>.tsv` with real CSV quoting (multi-line cells); items are the
  headline and every sentence of the article text. Train: `train_50shot.tsv`, `train_5shot.tsv`.
- hedderich_topics: `<lang>/<split>.tsv`, no quoting, `news_title` column; train is `train_clean`.
- yosm: `<split>.tsv` (no language folder), records end with "\n" only (stray "\r" inside
  reviews), column `yo_review`.
- afrisenti: `<lang>/<split>.tsv`, quotes are literal (split on TAB), column `tweet`.
"""
from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline.segment import split_sentences

EVAL_SETS = ("masakhaner1", "masakhaner2", "masakhanews", "hedderich_topics", "yosm", "afrisenti")


@dataclass(frozen=True)
class EvalItem:
    eval_set: str
    split: str
    lang: str
    text: str


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _conll_sentences(path: Path) -> Iterator[str]:
    tokens: list[str] = []
    with _open_text(path) as handle:
        for raw in handle.read().split("\n"):
            fields = raw.split()
            if not fields or fields[0] == "-DOCSTART-":
                if tokens:
                    yield " ".join(tokens)
                tokens = []
                continue
            tokens.append(fields[0])
    if tokens:
        yield " ".join(tokens)


def _tab_rows(path: Path) -> Iterator[dict]:
    """Header-first TSV with literal quotes, records split on "\n" only."""
    with _open_text(path) as handle:
        lines = handle.read().split("\n")
    header = lines[0].rstrip("\r").split("\t")
    for raw in lines[1:]:
        if raw.strip():
            yield dict(zip(header, raw.split("\t")))


def _quoted_rows(path: Path) -> Iterator[dict]:
    with _open_text(path) as handle:
        yield from csv.DictReader(handle, delimiter="\t")


def _split_files(folder: Path, split: str, names: dict[str, tuple[str, ...]]) -> list[Path]:
    return [folder / name for name in names.get(split, (split,)) if (folder / name).exists()]


def _lang_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def _ner(root: Path, name: str, split: str) -> Iterator[EvalItem]:
    for lang_dir in _lang_dirs(root):
        for path in _split_files(lang_dir, split, {split: (f"{split}.txt", f"{split}.txt.gz")}):
            for text in _conll_sentences(path):
                yield EvalItem(name, split, lang_dir.name, text)


def _news(root: Path, split: str) -> Iterator[EvalItem]:
    names = {"train": ("train_50shot.tsv", "train_5shot.tsv", "train.tsv")}
    for lang_dir in _lang_dirs(root):
        for path in _split_files(lang_dir, split, {**names, split: names.get(split, (f"{split}.tsv",))}):
            for row in _quoted_rows(path):
                yield EvalItem("masakhanews", split, lang_dir.name, row.get("headline") or "")
                for paragraph in (row.get("text") or "").splitlines():
                    for sentence in split_sentences(paragraph.strip()):
                        yield EvalItem("masakhanews", split, lang_dir.name, sentence)


def _column_set(root: Path, name: str, split: str, column: str, train_name: str) -> Iterator[EvalItem]:
    folders = _lang_dirs(root) if name != "yosm" else [root]
    for folder in folders:
        lang = folder.name if name != "yosm" else "yor"
        for path in _split_files(folder, split, {"train": (f"{train_name}.tsv",), split: (f"{split}.tsv",)} if split == "train" else {split: (f"{split}.tsv",)}):
            for row in _tab_rows(path):
                yield EvalItem(name, split, lang, (row.get(column) or "").replace("\r", " "))


def iter_eval_items(eval_dir: str | Path, sets: list[str], splits: list[str]) -> Iterator[EvalItem]:
    """Every item of the given sets and splits; a missing set folder is an error naming it."""
    eval_dir = Path(eval_dir)
    for name in sets:
        root = eval_dir / name
        if name not in EVAL_SETS:
            raise ValueError(f"decontam.sets: unknown evaluation set {name!r}; known: {list(EVAL_SETS)}")
        if not root.is_dir():
            raise FileNotFoundError(f"evaluation set {name!r} not found at {root} (setting eval_dir)")
        for split in splits:
            if name in ("masakhaner1", "masakhaner2"):
                yield from _ner(root, name, split)
            elif name == "masakhanews":
                yield from _news(root, split)
            elif name == "hedderich_topics":
                yield from _column_set(root, name, split, "news_title", "train_clean")
            elif name == "yosm":
                yield from _column_set(root, name, split, "yo_review", "train")
            else:
                yield from _column_set(root, name, split, "tweet", "train")


def eval_files(eval_dir: str | Path, sets: list[str]) -> list[Path]:
    """Every file of the given sets (hashed into the manifest's inputs)."""
    eval_dir = Path(eval_dir)
    return sorted(p for name in sets for p in (eval_dir / name).rglob("*") if p.is_file())
