"""Keys for matching text: the exact-dedup key and word tokens for decontamination.

Both are built on NFC + casefold and keep every combining mark, so Yoruba "ọkọ̀" (boat) and
"ọkọ" (husband) stay different while NFC/NFD, case and spacing variants of one sentence match.
"""
from __future__ import annotations

import hashlib
import unicodedata

import regex

_NOT_WORD = regex.compile(r"[^\p{L}\p{M}\p{N}]+")   # punctuation, symbols, emoji, spaces
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")


def _fold(text: str) -> str:
    # casefold can emit decomposed sequences ("İ" -> "i̇"), so NFC again afterwards.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def dedup_key(text: str) -> str:
    """NFC, casefolded, punctuation/symbols removed, words joined by single spaces."""
    return " ".join(_WORD.findall(_fold(text)))


def word_tokens(text: str) -> list[str]:
    """Letters-and-digits tokens (combining marks kept) of the NFC casefolded text."""
    return _WORD.findall(_fold(text))


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` (same on every machine and Python process)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def line_id(lang: str, source: str, path: str, line_no: int, text: str) -> str:
    blob = f"{source}\x00{path}\x00{line_no}\x00{text}".encode("utf-8")
    return f"{lang}-{hashlib.blake2b(blob, digest_size=8).hexdigest()}"
