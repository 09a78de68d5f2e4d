"""Respellings of evaluation sentences as web pages write them, to test and tune decontamination.

Each function takes a sentence and returns it respelled, or the sentence unchanged when the
respelling does not apply (no marks to strip, no hooked letter, no vowel meeting a vowel).
"""

from __future__ import annotations

import random
import unicodedata

import regex

_MARKS = regex.compile(r"\p{M}")
_HOOKED = str.maketrans("ɓɗƙƴƁƊƘƳɖƉ", "bdkyBDKYdD")
_VOWELS = "aeiouɛɔə"


def strip_marks(text: str) -> str:
    """Tone marks and dots below left out."""
    return unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFD", text)))


def stack_marks(text: str) -> str:
    """A second dot below after every mark, as broken input methods type it ("lọ̣̣́wọ́")."""
    out = []
    for ch in unicodedata.normalize("NFD", text):
        out.append(ch)
        if unicodedata.category(ch) == "Mn":
            out.append("\u0323")
    return unicodedata.normalize("NFC", "".join(out))


def plain_hooks(text: str) -> str:
    """Hooked letters written plain (Hausa "ɗaki" -> "daki")."""
    return text.translate(_HOOKED)


def curly_apostrophes(text: str) -> str:
    """Straight apostrophes and modifier letters as typographic ones ("n'ụlọ" -> "n’ụlọ")."""
    return text.replace("'", "\u2019").replace("\u02bc", "\u2019")


def _without_final_letter(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    base_end = len(decomposed.rstrip("".join(set(_MARKS.findall(decomposed)))))
    return unicodedata.normalize("NFC", decomposed[: base_end - 1])


def elide_vowels(text: str, share: float = 0.5, seed: int = 0) -> str:
    """A word's final vowel dropped before a word that starts with a vowel, the two joined
    (Yoruba "pé ètò" -> "pétò"), at `share` of the places where it can happen; a joined word is
    not joined again, as writers elide between two words, not along a phrase."""
    rng = random.Random(seed)
    words = text.split()
    out, joined = words[:1], False
    for word in words[1:]:
        last, first = strip_marks(out[-1])[-1:].lower(), strip_marks(word)[:1].lower()
        can = last and first and last in _VOWELS and first in _VOWELS and not joined
        joined = False
        if can and rng.random() < share:
            joined = True
            out[-1] = _without_final_letter(out[-1]) + word
        else:
            out.append(word)
    return " ".join(out)


def inside_paragraph(text: str, before: str, after: str) -> str:
    """The sentence in the middle of a longer paragraph."""
    return f"{before} {text} {after}"


RESPELLINGS = {
    "marks stripped": strip_marks,
    "marks stacked": stack_marks,
    "hooks plain": plain_hooks,
    "curly apostrophes": curly_apostrophes,
    "vowels elided": elide_vowels,
    "marks stripped + vowels elided": lambda t: elide_vowels(strip_marks(t)),
}
