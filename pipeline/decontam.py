"""Step 5: drop every line that overlaps a dev/test item of a registered evaluation set.

Words are the folded words of textkey.py (marks, hooked letters and apostrophes folded away,
case and punctuation ignored), so a test sentence copied without its tone marks, with stacked
marks or with plain hooks still matches. A line is dropped when:
- **words**: it shares a run of `ngram` (8) folded words with an item of >= 8 words, or contains
  the whole word sequence of an item, or of a sentence of an item (a headline, a short sentence
  of an article), of `min_item_words` (5) to 7 words. 8 words are long enough
  that a shared run is almost never chance (names and formulae are shorter) and short enough to
  catch a test sentence inside a longer paragraph or cut by another sentence splitter. Items
  under 5 words ("Ẹ kú àárọ̀", a one-word tweet) are ignored: they occur in ordinary text.
- **letters**: elision ("pé ètò" -> "pétò") and re-spacing ("kónílé - gbélé" -> "kónílégbélé")
  change the words but not the letters. Each item's folded letters, spaces removed, are cut into
  chunks of `chunk_letters` (16) letters starting at each word start; a line sharing a chunk is a
  candidate, and is dropped when at least `min_similarity` (0.7) of the shorter text's letter
  5-grams (line or item) occur in the stretch of the other that the chunk lines up with, and the
  shorter text has at least `min_letters` (40) letters. The check costs one lookup per word, like
  the word check.
The thresholds were chosen on the shared data (docs/corpus.md, "Decontamination"): planted
respellings caught against clean lines lost.

The index maps Python hashes to item numbers; it is built once per worker in `DoFn.setup()`
(hashes are per-process, so the index never leaves the worker).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from common import uri
from common.config import ConfigError
from common.eval_sets import EvalItem, iter_items, split_file, task_registry
from common.io import sha256_file
from pipeline.config import CorpusConfig, DecontamConfig
from pipeline.records import Line
from pipeline.segment import split_sentences
from pipeline.textkey import folded_words

log = logging.getLogger(__name__)
SHINGLE = 5  # letters per n-gram of the similarity check
MAX_SHARED = 4  # items remembered per chunk: boilerplate chunks shared by many items


@dataclass(frozen=True)
class Match:
    item: int  # number of the item in the index (EvalIndex.items)
    how: str  # "words" or "letters"


def letter_chunks(words: list[str], size: int) -> Iterable[tuple[int, str]]:
    """(offset, `size` letters) of the joined words from each word start, while enough are left."""
    letters = "".join(words)
    start = 0
    for word in words:
        if len(letters) - start < size:
            return
        yield start, letters[start : start + size]
        start += len(word)


def shingles(letters: str) -> set[str]:
    return {letters[i : i + SHINGLE] for i in range(max(1, len(letters) - SHINGLE + 1))}


def aligned_similarity(line: str, line_at: int, item: str, item_at: int) -> float:
    """Share of the shorter text's letter 5-grams found in the stretch of the longer one that a
    shared chunk (at `line_at` in the line, `item_at` in the item) lines up with it.

    Only that stretch (plus a fifth of slack for elided or inserted letters) is compared: a short
    line's 5-grams would all turn up somewhere in a long news article by chance.
    """
    (short, short_at), (long, long_at) = sorted(((line, line_at), (item, item_at)), key=lambda t: len(t[0]))
    start, slack = long_at - short_at, len(short) // 5 + SHINGLE
    window = long[max(0, start - slack) : start + len(short) + slack]
    short_grams = shingles(short)
    return len(short_grams & shingles(window)) / len(short_grams)


class EvalIndex:
    """Folded word n-grams, whole short items and letter chunks of evaluation items."""

    def __init__(self, cfg: DecontamConfig, words: Callable[[str], list[str]] = folded_words, letters: bool = True):
        self.ngram = cfg.ngram
        self.min_item_words = cfg.min_item_words
        self.chunk = cfg.chunk_letters if letters else 0
        self.min_similarity = cfg.min_similarity
        self.min_letters = cfg.min_letters
        self.words = words
        self.items: list[EvalItem] = []
        self.item_letters: list[str] = []
        self.word_keys: dict[int, int] = {}
        self.chunk_keys: dict[int, int | list[int]] = {}
        self.lengths: set[int] = set()  # word-window lengths present in the index
        self.ignored_short = 0

    def add(self, item: EvalItem) -> None:
        tokens = self.words(item.text)
        if len(tokens) < self.min_item_words:
            self.ignored_short += 1
            return
        number = len(self.items)
        self.items.append(item)
        self.item_letters.append("".join(tokens) if self.chunk else "")
        n = min(len(tokens), self.ngram)
        self.lengths.add(n)
        for i in range(len(tokens) - n + 1):
            self.word_keys.setdefault(hash(tuple(tokens[i : i + n])), number)
        if len(tokens) > self.ngram:  # a headline or short sentence of an article: matched whole too
            for sentence in (s for line in item.text.splitlines() for s in split_sentences(line.strip())):
                words = self.words(sentence)
                if self.min_item_words <= len(words) < self.ngram:
                    self.lengths.add(len(words))
                    self.word_keys.setdefault(hash(tuple(words)), number)
        if self.chunk:
            for _, chunk in letter_chunks(tokens, self.chunk):
                key = hash(chunk)
                found = self.chunk_keys.get(key)
                if found is None:
                    self.chunk_keys[key] = number
                elif isinstance(found, int):
                    if found != number:
                        self.chunk_keys[key] = [found, number]
                elif len(found) < MAX_SHARED and number not in found:
                    found.append(number)

    def matches(self, text: str) -> Iterator[Match]:
        """Every item `text` overlaps (each once), word matches first."""
        tokens = self.words(text)
        keys, seen = self.word_keys, set()
        for n in self.lengths:
            for i in range(len(tokens) - n + 1):
                found = keys.get(hash(tuple(tokens[i : i + n])))
                if found is not None and found not in seen:
                    seen.add(found)
                    yield Match(found, "words")
        for number, score in self.letter_similarities(tokens, seen):
            if score >= self.min_similarity:
                yield Match(number, "letters")

    def letter_similarities(self, tokens: list[str], skip: set = frozenset()) -> Iterator[tuple[int, float]]:
        """(item, aligned similarity) for each item sharing a letter chunk with the folded words
        `tokens` (each item once, the first chunk's alignment), long enough to be compared."""
        letters = "".join(tokens)
        if not self.chunk or len(letters) < self.min_letters:
            return
        seen = set(skip)
        for at, chunk in letter_chunks(tokens, self.chunk):
            found = self.chunk_keys.get(hash(chunk))
            for number in () if found is None else [found] if isinstance(found, int) else found:
                if number in seen:
                    continue
                seen.add(number)
                item = self.item_letters[number]
                if len(item) >= self.min_letters:
                    yield number, aligned_similarity(letters, at, item, item.find(chunk))

    def find(self, text: str) -> Match | None:
        """The first item `text` overlaps, and how, or None."""
        return next(self.matches(text), None)

    def match(self, text: str) -> str | None:
        """The evaluation set `text` overlaps, or None."""
        found = self.find(text)
        return None if found is None else self.items[found.item].eval_set

    def describe(self) -> str:
        return (
            f"{len(self.items)} eval items ({len(self.word_keys)} word n-grams, "
            f"{len(self.chunk_keys)} letter chunks, {self.ignored_short} short items ignored)"
        )

    @classmethod
    def from_sources(cls, sources: list[tuple], data_dir: str, cfg: DecontamConfig, **kwargs) -> "EvalIndex":
        """Every item of the (task, lang, split) sources, read through the registry's readers."""
        index = cls(cfg, **kwargs)
        for task, lang, split in sources:
            for item in iter_items(task, lang, split, data_dir):
                index.add(item)
        return index


@dataclass
class EvalSources:
    """What decontamination reads: (task, lang, split) sources, and the record for the manifest."""

    sources: list[tuple]
    record: dict  # set name -> {"splits", "files": {path: sha256}, "missing": [...], "hub": [...]}


def plan_sources(cfg: CorpusConfig) -> EvalSources:
    """The dev/test files of every selected evaluation set; errors name the setting or file.

    A language file a set declares but the data folder lacks is listed as missing (logged, and
    recorded in the manifest); a set with no file at all is an error. A file shared by two sets
    (the out-of-domain sentiment task reuses AfriSenti and YOSM) is indexed once.
    """
    try:
        registry = task_registry(cfg.tasks_file, cfg.custom_tasks)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from None
    names = list(cfg.decontam.sets) or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ConfigError(
            f"decontam.sets: unknown evaluation set(s) {unknown}; registered: {sorted(registry)} "
            "(add your own with tasks_file or custom_tasks)"
        )
    splits = list(cfg.decontam.splits) + ([] if cfg.decontam.keep_train else ["train"])
    sources, record, seen = [], {}, set()
    for name in names:
        task = registry[name]
        entry = record[name] = {"splits": splits, "files": {}, "missing": [], "hub": []}
        for lang in task.langs:
            for split in splits:
                path = split_file(task, lang, split, cfg.data_dir)
                if path is None:
                    entry["hub"].append(f"{lang}/{split}")
                elif not uri.exists(path):
                    entry["missing"].append(str(path))
                else:
                    entry["files"][str(path)] = sha256_file(path)
                    where = str(path) if uri.is_remote(path) else os.path.abspath(path)
                    if where not in seen:
                        seen.add(where)
                        sources.append((task, lang, split))
        if not entry["files"] and not entry["hub"]:
            raise FileNotFoundError(
                f"evaluation set {name!r}: none of its {'/'.join(splits)} files found, "
                f"e.g. {entry['missing'][0]} (setting data_dir, or decontam.sets)"
            )
        if entry["missing"]:
            log.warning(
                "decontam: %s: %d file(s) not found, not cleaned against (e.g. %s)",
                name,
                len(entry["missing"]),
                entry["missing"][0],
            )
        if entry["hub"]:
            log.warning("decontam: %s: split(s) %s are read from the Hub and not cleaned against", name, entry["hub"])
    return EvalSources(sources, record)


def decontaminate_line(line: Line, index: EvalIndex) -> Line:
    """The line, or the line dropped `decontaminated` with the eval set it overlaps as detail."""
    eval_set = index.match(line.text)
    return line if eval_set is None else line.drop("decontaminated", eval_set)
