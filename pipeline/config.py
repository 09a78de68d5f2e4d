"""Settings of the corpus stage (`python -m pipeline.run`), as typed dataclasses.

Loaded by `common.config.load_config` from `pipeline/configs/default.yaml` plus `key=value`
overrides; every field is validated in `__post_init__` with a message naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError
from common.eval_sets import TaskSpec

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = PACKAGE_DIR / "configs" / "default.yaml"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class SplitConfig:
    """Cutting long records into sentence/paragraph units (pipeline/segment.py)."""

    max_chars: int = 2000  # a unit longer than this is cut at sentence ends, then at spaces
    reject_chars: int = 1_000_000  # a raw record longer than this is rejected `too_long` unread

    def __post_init__(self) -> None:
        _check(self.max_chars >= 50, f"split.max_chars must be >= 50, got {self.max_chars}")
        _check(self.reject_chars > self.max_chars, "split.reject_chars must exceed split.max_chars")


@dataclass
class FilterConfig:
    """Line-quality thresholds (pipeline/filters.py); each failed check is one drop reason."""

    min_words: int = 3  # peers keep > 5 words; 3 keeps short Bible verses and headlines
    min_chars: int = 15  # ... and at least this many letters+digits+spaces
    max_words: int = 400
    min_script_share: float = 0.8  # share of letters in the language's expected script
    min_letter_share: float = 0.5  # letters / non-space characters (digits, punctuation, emoji)
    max_char_repeat: float = 0.5  # share of the text taken by the most common character
    max_word_repeat: float = 0.5  # share of words that are the most common word (>= 6 words)
    max_pivot_share: float = 0.15  # share of words that are English/French function words (>= 6 words)

    def __post_init__(self) -> None:
        _check(self.min_words >= 1, f"filter.min_words must be >= 1, got {self.min_words}")
        _check(self.max_words > self.min_words, "filter.max_words must exceed filter.min_words")
        for name in ("min_script_share", "min_letter_share", "max_char_repeat", "max_word_repeat", "max_pivot_share"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"filter.{name} must be in [0, 1], got {value}")


@dataclass
class MinHashConfig:
    """Near-duplicate detection within each language (pipeline/near_dedup.py).

    LSH with `bands` x `rows` = `num_perm`: a pair of Jaccard similarity J becomes a candidate
    with probability 1 - (1 - J**rows)**bands. Default 16 x 4: J=0.8 -> 0.9998, J=0.5 -> 0.64,
    J=0.3 -> 0.12; candidates are then confirmed by the signature's Jaccard estimate >= threshold
    (std. error sqrt(J(1-J)/num_perm) ~ 0.05 at J=0.8, 64 permutations).
    """

    enabled: bool = True
    num_perm: int = 64
    bands: int = 16
    rows: int = 4
    threshold: float = 0.8
    shingle_chars: int = 5  # character n-grams over the dedup key
    seed: int = 1

    def __post_init__(self) -> None:
        _check(
            self.bands * self.rows == self.num_perm,
            f"minhash.bands x minhash.rows must equal minhash.num_perm ({self.num_perm})",
        )
        _check(0.0 < self.threshold <= 1.0, f"minhash.threshold must be in (0, 1], got {self.threshold}")
        _check(self.shingle_chars >= 1, "minhash.shingle_chars must be >= 1")


@dataclass
class DecontamConfig:
    """Removal of evaluation text (pipeline/decontam.py); thresholds measured in docs/corpus.md."""

    enabled: bool = True
    ngram: int = 8  # a corpus line sharing a run of 8 folded words with an eval item is dropped
    min_item_words: int = 5  # shorter eval items ("Ẹ kú àárọ̀") are ignored: too common to mean leakage
    chunk_letters: int = 16  # letter chunks that make a line a candidate of the letters check (0 = off)
    min_similarity: float = 0.7  # a candidate is dropped when this share of the shorter text's letter 5-grams is shared
    min_letters: int = 40  # ... and the shorter text has this many letters (short lines match long articles by chance)
    splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    keep_train: bool = True  # train splits of eval sets stay in the corpus (visible choice)
    sets: list[str] = field(default_factory=list)  # evaluation sets to clean against; empty = every registered one

    def __post_init__(self) -> None:
        _check(self.ngram >= 2, f"decontam.ngram must be >= 2, got {self.ngram}")
        _check(
            1 <= self.min_item_words <= self.ngram,
            f"decontam.min_item_words must be in [1, decontam.ngram], got {self.min_item_words}",
        )
        _check(
            self.chunk_letters == 0 or self.chunk_letters >= 8,
            f"decontam.chunk_letters must be 0 (off) or >= 8, got {self.chunk_letters}",
        )
        _check(self.min_letters >= 0, f"decontam.min_letters must be >= 0, got {self.min_letters}")
        _check(
            0.0 < self.min_similarity <= 1.0, f"decontam.min_similarity must be in (0, 1], got {self.min_similarity}"
        )
        bad = sorted(set(self.splits) - {"dev", "test"})
        _check(not bad, f"decontam.splits: unknown split(s) {bad}; use dev/test (train: keep_train)")


@dataclass
class ValidConfig:
    """Fixed per-language validation split, chosen by hash of the dedup key."""

    fraction: float = 0.01
    min_lines: int = 50
    max_lines: int = 2000
    max_share: float = 0.1  # never more than this share of a small language

    def __post_init__(self) -> None:
        _check(0.0 <= self.fraction < 1.0, f"valid.fraction must be in [0, 1), got {self.fraction}")
        _check(0 <= self.min_lines <= self.max_lines, "valid.min_lines must be <= valid.max_lines")
        _check(0.0 <= self.max_share < 1.0, f"valid.max_share must be in [0, 1), got {self.max_share}")


@dataclass
class CorpusConfig:
    """The whole corpus stage."""

    data_dir: str = "../shared/data"  # a folder or a URI (s3://bucket/data, gs://...)
    out_dir: str = "out/corpus"  # likewise
    catalog: str | None = None  # default: pipeline/catalog.yaml
    tasks_file: str | None = None  # your own evaluation sets (same shape as common/eval_sets.yaml), cleaned against too
    custom_tasks: list[TaskSpec] = field(default_factory=list)  # ... or inline, as finetuning takes them
    langs: list[str] | None = None  # subset of catalog languages (default all)
    sources: list[str] | None = None  # subset of catalog entry names (default all)
    num_shards: int = 1  # shards per language and split
    rejected_samples: int = 200  # rejected lines kept per reason in rejected/<reason>.jsonl
    split: SplitConfig = field(default_factory=SplitConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    valid: ValidConfig = field(default_factory=ValidConfig)

    def __post_init__(self) -> None:
        _check(1 <= self.num_shards <= 1024, f"num_shards must be in [1, 1024], got {self.num_shards}")
        _check(self.rejected_samples >= 0, "rejected_samples must be >= 0")
        if self.catalog is None:
            self.catalog = str(PACKAGE_DIR / "catalog.yaml")
