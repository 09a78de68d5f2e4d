"""Step 2: Unicode and whitespace normalisation of every text unit.

Policy (also in docs/corpus.md):
- Unicode NFC, never NFKC: NFKC folds compatibility characters (superscripts, ligatures,
  full-width forms) and would change meaning; NFC only composes, and keeps every combining
  mark: Yoruba tone marks (ẹ̀, ọ́), Igbo dots, Ewe/Fon letters stay exactly as written.
- Mojibake (UTF-8 read as cp1252, "Ã©") is repaired with `ftfy.fix_encoding` only when
  `ftfy.badness.is_bad` flags the text; ftfy's other fixers (quote uncurling, width folding,
  NFKC, HTML unescaping) are never run, so correct text passes through untouched.
- Line breaks: CRLF, bare CR, U+2028/U+2029 and NEL become "\n" (paragraph boundary, used by
  the splitter); tabs become spaces.
- Control characters (Unicode Cc other than "\n") are removed.
- Zero-width characters: ZWSP U+200B, word joiner U+2060, BOM/ZWNBSP U+FEFF, Mongolian vowel
  separator U+180E and bidi controls (U+200E/F, U+202A-E, U+2066-9) are removed: they are
  invisible, carry no meaning in our languages' scripts and break word matching.
  ZWJ U+200D and ZWNJ U+200C are KEPT between two non-space characters (they shape
  Indic/Arabic script and join emoji sequences such as 👩‍🌾) and removed elsewhere.
- Soft hyphen U+00AD is removed (a line-break hint that splits words for matching).
- Every other space separator (NBSP U+00A0, narrow NBSP U+202F, U+2000-U+200A, U+3000,
  U+1680, U+205F) becomes an ASCII space. The Ethiopic wordspace "፡" (U+1361) is punctuation,
  not a space, and is kept.
- Runs of spaces collapse to one; each line is stripped; blank lines collapse to one "\n".
"""

from __future__ import annotations

import unicodedata

import ftfy
import regex
from ftfy.badness import is_bad

from pipeline.records import Line

# Cheap pre-check before ftfy's heuristic: UTF-8 read as cp1252/latin-1 always shows a lead
# byte (Â..ô) followed by a continuation byte (U+0080..U+00BF or a cp1252 special character).
_MOJIBAKE_HINT = regex.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_NEWLINES = regex.compile(r"\r\n|[\r\u2028\u2029\u0085\v\f]")
_DROP_INVISIBLE = regex.compile(
    r"[\u200B\u2060\uFEFF\u180E\u200E\u200F\u202A-\u202E\u2066-\u2069\u00AD]"
    r"|[^\S\n]*[\u200C\u200D]+(?=[^\S\n]|$)"  # ZWJ/ZWNJ before a space or the end
    r"|(?:(?<=^)|(?<=\s))[\u200C\u200D]+",  # ZWJ/ZWNJ after a space or at the start
    regex.MULTILINE,
)
_CONTROLS = regex.compile(r"[^\P{Cc}\n]")  # Cc except newline (tab is handled as a space)
_SPACES = regex.compile(r"[^\S\n]+")  # any run of whitespace other than newline
_BLANK_LINES = regex.compile(r"\n(?:[^\S\n]*\n)+")


def _normalise_once(text: str) -> str:
    text = _NEWLINES.sub("\n", text).replace("\t", " ")
    text = _CONTROLS.sub("", text)
    text = _DROP_INVISIBLE.sub("", text)
    if _MOJIBAKE_HINT.search(text) and is_bad(text):
        text = ftfy.fix_encoding(text)
    text = unicodedata.normalize("NFC", text)
    text = _DROP_INVISIBLE.sub("", text)  # again: NFC can bring a ZWJ/ZWNJ to a word edge
    text = _SPACES.sub(" ", text)
    text = "\n".join(part.strip() for part in text.split("\n"))
    text = _BLANK_LINES.sub("\n", text)
    # Removing an invisible character can put a combining mark next to its base again.
    return unicodedata.normalize("NFC", text.strip())


def normalise_text(text: str) -> str:
    """Apply the policy above until the text stops changing, so the result is NFC and
    normalise_text(normalise_text(t)) == normalise_text(t). One pass is not always a fixed
    point (the fuzzer found mojibake repair that only triggers once a control character or
    an odd space is gone); clean text costs one pass, text that changed one more."""
    for _ in range(4):
        normalised = _normalise_once(text)
        if normalised == text:
            break
        text = normalised
    return text


def normalise_line(line: Line) -> Line:
    """The line with normalised text (never drops: an empty result is dropped by the splitter)."""
    return line._replace(text=normalise_text(line.text))
