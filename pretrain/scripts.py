"""The Unicode script of letters: the junk guard's token table (pretrain/scoring.py) and the
filters of generated text (pretrain/generate.py) both ask it. A leaf: no torch."""

from __future__ import annotations

import functools
from collections import Counter

import regex

# Scripts of the project's languages (and their usual intruders); other letters count as "Other".
SCRIPTS = ("Latin", "Ethiopic", "Arabic", "Tifinagh", "Nko", "Vai", "Adlam", "Greek", "Cyrillic", "Han", "Devanagari")
_SCRIPT_RES = {name: regex.compile(rf"\p{{Script={name}}}") for name in SCRIPTS}
_LETTER_RE = regex.compile(r"\p{L}")


@functools.lru_cache(maxsize=65536)
def char_script(char: str) -> str:
    """Unicode script of one letter among SCRIPTS, else "Other"."""
    return next((name for name, pattern in _SCRIPT_RES.items() if pattern.match(char)), "Other")


def script_counts(text: str) -> Counter:
    """Letters of `text` per Unicode script."""
    return Counter(char_script(char) for char in _LETTER_RE.findall(text))


def main_script(text: str) -> str | None:
    counts = script_counts(text)
    return counts.most_common(1)[0][0] if counts else None
