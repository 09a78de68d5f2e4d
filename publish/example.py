"""The fill-mask example: the sentence the dry run checks and the model card's widget shows.

The Hub's widget runs the model on the card's example and shows its top guesses as they come.
A small model's most likely piece for a masked word is often the bare word-start piece "▁"
(an empty guess) or punctuation, so a fixed sentence would advertise an empty answer. The
example is therefore chosen: `sample_text` when the model's top guess there is a word, else
the validation sentence, with one word masked, on which the model's top guess is a word with
the highest probability. The raw top guesses of the chosen sentence are reported unchanged;
when no sentence tried gives a word, `sample_text` is kept and the report says so, naming the
best word among its top guesses.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from common.corpus import shard_paths
from common.io import read_jsonl

MASK = "<mask>"
WORD_START = "\u2581"  # SentencePiece's word-start mark, first character of a word's first piece
TOP_K = 5  # what the Hub's fill-mask widget shows
FALLBACK_TOP_K = 50  # how far down the sample's guesses to look for a word when none of the tops is one
LINES_PER_LANGUAGE = 20  # validation lines read per language (the first of its first shard)
MAX_LINE_CHARS = 120  # a widget example should be readable at a glance
MIN_WORDS = 4  # enough context around the blank
# Characters allowed inside a word besides letters and combining marks (ilé-ìwé, n'ụlọ).
WORD_JOINERS = "-'\u2019"


def _spelled_as_word(text: str) -> bool:
    """Letters and combining marks only (plus joiners), at least two letters."""
    letters = sum(unicodedata.category(ch).startswith("L") for ch in text)
    return letters >= 2 and all(unicodedata.category(ch)[0] in "LM" or ch in WORD_JOINERS for ch in text)


def is_word_piece(piece: str) -> bool:
    """A vocabulary piece that starts a word and spells one: "▁ilé", not "▁", "▁.", "▁1" or a
    word's inner piece "é" (the mask takes the space before it, so only a word-start piece
    fills the blank with a word)."""
    return piece.startswith(WORD_START) and _spelled_as_word(piece[len(WORD_START) :])


def validation_shards(corpus_dir: str | Path | None, languages: Iterable[str]) -> list[Path]:
    """The first validation shard of each language the corpus folder has (none without one)."""
    if not corpus_dir or not Path(corpus_dir).is_dir():
        return []
    shards = []
    for lang in languages:
        paths = shard_paths(corpus_dir, lang, "valid")
        if paths:
            shards.append(paths[0])
    return shards


def _usable_lines(shard: Path) -> list[str]:
    lines = []
    for record in read_jsonl(shard):
        text = " ".join(str(record.get("text", "")).split())
        if len(text) <= MAX_LINE_CHARS and "<" not in text and len(text.split(" ")) >= MIN_WORDS:
            lines.append(text)
            if len(lines) == LINES_PER_LANGUAGE:
                break
    return lines


def masked_candidates(lines: list[str]) -> list[str]:
    """Each line once per plain word (letters only, no digits or punctuation attached), with
    that word replaced by `<mask>`."""
    out = []
    for line in lines:
        words = line.split(" ")
        for i, word in enumerate(words):
            if _spelled_as_word(word):
                out.append(" ".join(words[:i] + [MASK] + words[i + 1 :]))
    return out


def candidate_texts(shards: list[Path], limit: int) -> list[str]:
    """At most `limit` masked validation sentences, taken in turn from each language so a
    small limit still spans the languages."""
    per_language = [masked_candidates(_usable_lines(shard)) for shard in shards]
    out: list[str] = []
    depth = 0
    while len(out) < limit and any(depth < len(c) for c in per_language):
        out += [c[depth] for c in per_language if depth < len(c)]
        depth += 1
    return out[:limit]


@dataclass
class Example:
    text: str  # the sentence with `<mask>`, as the card shows it
    predictions: list[dict]  # the pipeline's raw top guesses for it, best first
    top_is_word: bool  # whether predictions[0] is a word (what the widget shows first)
    word: dict | None  # the best word among the guesses: predictions[0] when top_is_word
    word_rank: int | None  # its rank (1 = top)
    tried: int  # sentences scored

    def summary(self) -> dict:
        """For the manifest: the raw guesses and what was reported."""
        strip = lambda p: {"token": p["token_str"], "score": p["score"]}  # noqa: E731
        return {
            "text": self.text,
            "predictions": [strip(p) for p in self.predictions],
            "top_is_word": self.top_is_word,
            "word": strip(self.word) if self.word else None,
            "word_rank": self.word_rank,
            "sentences_tried": self.tried,
        }

    def describe(self) -> str:
        """One line for the log: the raw top guess, honestly, and the word when it differs."""
        guesses = ", ".join(f"{p['token_str']!r} {p['score']:.3f}" for p in self.predictions)
        line = f"fill-mask example {self.text!r}: top guesses {guesses}"
        if self.top_is_word:
            return f"{line} (chosen from {self.tried} sentence(s) tried)"
        if self.word is None:
            return f"{line}; no word among its top {FALLBACK_TOP_K} guesses"
        return (
            f"{line}; the top guess is not a word in any of {self.tried} sentence(s) tried; best word "
            f"among the top {FALLBACK_TOP_K}: {self.word['token_str']!r} (rank {self.word_rank}, "
            f"{self.word['score']:.3f})"
        )


def choose_example(fill, sample_text: str, candidates: list[str]) -> Example:
    """Score `sample_text` and `candidates` with the fill-mask pipeline `fill` and pick the
    example (module docstring)."""
    tokenizer = fill.tokenizer
    texts = [sample_text] + [c for c in candidates if c != sample_text]
    results = fill([t.replace(MASK, tokenizer.mask_token) for t in texts], top_k=TOP_K)
    if len(texts) == 1:  # the pipeline unwraps a one-item list
        results = [results]

    def top_is_word(predictions: list[dict]) -> bool:
        return is_word_piece(tokenizer.convert_ids_to_tokens(predictions[0]["token"]))

    words = [i for i, predictions in enumerate(results) if top_is_word(predictions)]
    if words:
        # The user's sentence when it works; else the most confident word (ties: the earlier).
        best = 0 if words[0] == 0 else max(words, key=lambda i: (results[i][0]["score"], -i))
        return Example(texts[best], results[best], True, results[best][0], 1, len(texts))
    deeper = fill(sample_text.replace(MASK, tokenizer.mask_token), top_k=FALLBACK_TOP_K)
    rank = next(
        (r for r, p in enumerate(deeper, start=1) if is_word_piece(tokenizer.convert_ids_to_tokens(p["token"]))), None
    )
    return Example(sample_text, results[0], False, deeper[rank - 1] if rank else None, rank, len(texts))
