"""Settings of the tokenizer stage, as typed dataclasses.

Presets live in `tokenizer/presets/*.yaml`; every field can be overridden on the command
line as `key.sub=value`. Field help (metadata "help") is what `--help` prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PRESET_DIR = Path(__file__).parent / "presets"

# The stage's config hash leaves these out: they say where things are, not what is built.
LOCATION_KEYS = ("corpus_dir", "out_dir", "force")


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class SamplingConfig:
    """Temperature sampling of training text across languages (XLM-R, Conneau et al. 2020).

    Language i with n_i characters of train text gets the share q_i = n_i^alpha / sum_j n_j^alpha
    of a budget of B characters: target_i = B * q_i (not q_i * n_i, which would shrink small
    languages the way AfriBERTa's script does). alpha=1 is the plain concatenation's
    proportions, alpha=0 gives every language the same amount.
    """

    alpha: float = _help("temperature exponent in q_i ~ n_i^alpha", default=0.3)
    char_budget: int = _help("total characters of training text B, over all languages", default=50_000_000)
    small_language: Literal["upsample", "cap"] = _help(
        "when n_i < B*q_i: 'upsample' repeats the language's text to reach its share (shares stay "
        "exactly q_i); 'cap' takes its text once and hands the rest of its share to the others "
        "in proportion to their q (water-filling)",
        default="upsample",
    )
    max_repeat: float = _help(
        "with 'upsample': at most this many passes over a language's text (0 = no limit); a "
        "language that would need more is capped at max_repeat x n_i and the rest of its share "
        "goes to the others, so a tiny language is not memorised as whole-verse pieces",
        default=20.0,
    )
    seed: int = _help("seed of the line draw and of SentencePiece's shuffling", default=0)
    max_line_chars: int = _help(
        "lines longer than this are cut at whitespace before training, so SentencePiece "
        "(max_sentence_length, in bytes) never skips them silently",
        default=2000,
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"sampling.alpha must be in [0, 1], got {self.alpha}")
        if self.max_repeat != 0 and self.max_repeat < 1:
            raise ValueError(f"sampling.max_repeat must be 0 (no limit) or at least 1, got {self.max_repeat}")
        if self.char_budget <= 0:
            raise ValueError(f"sampling.char_budget must be positive, got {self.char_budget}")
        if self.max_line_chars < 16:
            raise ValueError(f"sampling.max_line_chars must be at least 16, got {self.max_line_chars}")


@dataclass
class SentencePieceConfig:
    """SentencePiece trainer settings; ids 0-3 are fixed to the XLM-R layout (docs/interfaces.md)."""

    model_type: Literal["unigram", "bpe"] = _help("SentencePiece algorithm", default="unigram")
    vocab_size: int = _help(
        "pieces including <s>,<pad>,</s>,<unk> and the 256 byte pieces; <mask> adds one more id",
        default=70_000,
    )
    character_coverage: float = _help(
        "share of characters covered by single-character pieces; the rest fall back to bytes",
        default=0.9999,
    )
    split_digits: bool = _help("every digit is its own piece (numbers tokenize uniformly)", default=True)
    input_sentence_size: int = _help(
        "lines SentencePiece loads from the sample (0 = all; the char budget is the size control)",
        default=0,
    )
    shuffle_input_sentence: bool = _help("shuffle before taking input_sentence_size lines", default=True)
    num_threads: int = _help("trainer threads; 0 = all available cores", default=0)
    max_sentencepiece_length: int = _help("longest piece in characters", default=16)
    hard_vocab_limit: bool = _help(
        "true: fail with a clear error when the text cannot support vocab_size pieces; false: "
        "accept a smaller vocabulary (the actual size is recorded in report.json and the manifest)",
        default=True,
    )

    def __post_init__(self) -> None:
        # 4 special pieces + 256 bytes + at least a few characters.
        if self.vocab_size < 300:
            raise ValueError(
                f"spm.vocab_size must be at least 300 (4 specials + 256 bytes + text), got {self.vocab_size}"
            )
        if not 0.98 <= self.character_coverage <= 1.0:
            raise ValueError(f"spm.character_coverage must be in [0.98, 1], got {self.character_coverage}")
        if self.num_threads < 0 or self.input_sentence_size < 0:
            raise ValueError("spm.num_threads and spm.input_sentence_size must be >= 0")

    def threads(self) -> int:
        if self.num_threads:
            return self.num_threads
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1


@dataclass
class ReportConfig:
    max_lines: int = _help("held-out (valid) lines per language measured in the report", default=5000)
    batch_size: int = _help("texts per batch when encoding for the report", default=1000)


@dataclass
class TokenizerConfig:
    corpus_dir: Path = _help("the corpus stage's output folder", default=Path("out/corpus"))
    out_dir: Path = _help("where the tokenizer folder is written", default=Path("out/tokenizer"))
    langs: list[str] = _help("languages to train on; empty = every language with train shards", default_factory=list)
    model_max_length: int = _help("model_max_length written into tokenizer_config.json", default=512)
    force: bool = _help("retrain even when the manifest says nothing changed", default=False)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    spm: SentencePieceConfig = field(default_factory=SentencePieceConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        if self.model_max_length < 8:
            raise ValueError(f"model_max_length must be at least 8, got {self.model_max_length}")
        if len(set(self.langs)) != len(self.langs):
            raise ValueError(f"langs lists a language twice: {self.langs}")
