"""Keys for matching text: the exact-dedup key, and the folded words of decontamination.

The dedup key is built on NFC + casefold and keeps every combining mark, so Yoruba "ọkọ̀" (boat)
and "ọkọ" (husband) stay two lines while NFC/NFD, case and spacing variants of one line meet.

Decontamination must catch an evaluation sentence however a web page spelled it, so its key also
folds what writers vary: tone marks and dots below (often left out, or stacked twice by broken
input methods), the hooked letters of Hausa, Fon, Ewe and others written plain (ɓ ɗ ɖ ƙ ƴ ƈ,
and open ɛ ɔ), and apostrophes of every shape (ʼ ' ’ ‘), which all split words as the plain
one does, so Igbo "n'ụlọ", "n’ụlọ" and "nʼụlọ" are the same two words. (The letters check of
decontamination ignores spaces, so it also matches Hausa "k'asa" to "ƙasa".)
"""

from __future__ import annotations

import hashlib
import unicodedata

import regex

from pipeline.records import Line

_NOT_WORD = regex.compile(r"[^\p{L}\p{M}\p{N}]+")  # punctuation, symbols, emoji, spaces
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
# A word has a letter or digit: a run of emoji variation selectors (marks) is no word.
_MARKED_WORD = regex.compile(r"\p{M}*[\p{L}\p{N}][\p{L}\p{M}\p{N}]*")
_FOLDED_WORD = regex.compile(r"[\p{L}\p{N}]+")
_MARKS = regex.compile(r"\p{M}+")
_APOSTROPHES = regex.compile(r"[\u02bc\u02bb'\u2019\u2018`\u00b4]")
_PLAIN_LETTERS = str.maketrans("ɓɗɖƙƴƈɛɔ", "bddkyceo")


def _fold(text: str) -> str:
    # casefold can emit decomposed sequences ("İ" -> "i̇"), so NFC again afterwards.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def dedup_key(text: str) -> str:
    """NFC, casefolded, punctuation/symbols removed, words joined by single spaces."""
    return " ".join(_WORD.findall(_fold(text)))


def with_dedup_key(line: Line) -> Line:
    """The line carrying its dedup key, computed once: exact dedup groups by it, near dedup
    shingles it, the validation split hashes it."""
    return line._replace(key=dedup_key(line.text))


def word_tokens(text: str) -> list[str]:
    """Letters-and-digits tokens (combining marks kept) of the NFC casefolded text."""
    return _MARKED_WORD.findall(_fold(text))


def folded_words(text: str) -> list[str]:
    """Words of the text with marks and hooks folded away, split at apostrophes (decontamination only)."""
    text = unicodedata.normalize("NFD", _fold(text))
    text = _APOSTROPHES.sub(" ", _MARKS.sub("", text)).translate(_PLAIN_LETTERS)
    return _FOLDED_WORD.findall(text)


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` (same on every machine and Python process)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def line_id(lang: str, source: str, path: str, line_no: int, text: str) -> str:
    blob = f"{source}\x00{path}\x00{line_no}\x00{text}".encode("utf-8")
    return f"{lang}-{hashlib.blake2b(blob, digest_size=8).hexdigest()}"
