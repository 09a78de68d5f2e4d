"""Step 3: cut normalised records into bounded sentence/paragraph units.

A record is first cut at line breaks (paragraphs). A paragraph of at most `max_chars`
characters is one unit, so short documents keep their context for masked-LM training. A longer
one is cut after sentence ends (". ! ?" and the Ethiopic full stop "።", question mark "፧" and
paragraph separator "፨", which need no following space) and the sentences are packed greedily
into units of at most `max_chars`. A sentence still longer is cut at the last space before the
limit; a run of `max_chars` characters without any space is garbage and is rejected `too_long`,
as is any record over `reject_chars` (checked before any work, so a 10 MB one-line file costs
one length check and one rejection, never a big regex pass).
"""

from __future__ import annotations

from typing import Iterator

import regex

from pipeline.records import Line

# End of sentence: Latin punctuation (optionally closed by quotes/brackets) then a space, or an
# Ethiopic terminator (never followed by a space in some sources: "ይሄዳል።ልጁ").
_SENTENCE_END = regex.compile(r"(?<=[.!?…][\"'”’»)\]]*)\s+|(?<=[።፧፨])\s*")


def split_sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s]


def _cut_at_spaces(sentence: str, max_chars: int) -> Iterator[str | None]:
    """Pieces of at most max_chars cut at spaces; None marks a piece with no space to cut at."""
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars + 1)
        if cut <= 0:
            yield None
            return
        yield sentence[:cut]
        sentence = sentence[cut + 1 :]
    if sentence:
        yield sentence


def pack_units(paragraph: str, max_chars: int) -> Iterator[str | None]:
    """Units of at most max_chars; None for an unsplittable over-long run."""
    if len(paragraph) <= max_chars:
        yield paragraph
        return
    current = ""
    for sentence in split_sentences(paragraph):
        for piece in _cut_at_spaces(sentence, max_chars):
            if piece is None:
                if current:
                    yield current
                    current = ""
                yield None
                continue
            if current and len(current) + 1 + len(piece) <= max_chars:
                current = f"{current} {piece}"
            else:
                if current:
                    yield current
                current = piece
    if current:
        yield current


def split_units(text: str, max_chars: int) -> Iterator[str | None]:
    for paragraph in text.split("\n"):
        if paragraph:
            yield from pack_units(paragraph, max_chars)


def split_line(line: Line, max_chars: int, reject_chars: int) -> Iterator[Line]:
    """One normalised line -> its units and `too_long` / `empty` drops, in order."""
    if len(line.text) > reject_chars:
        yield line.drop("too_long", f"{len(line.text)} chars")
        return
    produced = False
    for unit in split_units(line.text, max_chars):
        produced = True
        yield line.drop("too_long", "no space to split at") if unit is None else line._replace(text=unit)
    if not produced:
        yield line.drop("empty")
