"""Step 4: line-quality filters. Each failed check is a drop with its own reason key.

Checks, in order (first failure wins):
- `replacement_char`: U+FFFD in the text (bytes were lost upstream).
- `too_short`: fewer than `min_words` words or `min_chars` characters. Peers keep lines of > 5
  words; we keep >= 3 words / >= 15 characters because our corpus is small and full of short but
  real sentences (Bible verses, headlines, proverbs) that teach the model morphology.
- `too_many_words`: more than `max_words` words (after splitting, only spaceless garbage).
- `urls_mentions`: fewer than `min_words` words left once URLs, @mentions and #hashtags are removed.
- `not_letters`: letters are under `min_letter_share` of the non-space characters (numbers,
  tables, punctuation or emoji runs).
- `wrong_script`: under `min_script_share` of the letters are in the language's script
  (Ethiopic for amh/tir, Latin otherwise); catches English/Arabic/Ge'ez in the wrong shard.
- `repetitive_chars`: one character is over `max_char_repeat` of the non-space characters, or a
  character repeats 10+ times in a row ("hahahahaha" is fine, "!!!!!!!!!!" and "aaaaaaaaaa" not).
- `repetitive_words`: with >= 6 words, the most frequent word is over `max_word_repeat` of them.
- `pivot_language`: with >= 6 words, over `max_pivot_share` of them are English or French
  function words that no corpus language uses (lists below); catches the English/French pivot
  side of parallel data and English glosses in a Latin-script shard. Naija Pidgin (pcm) is exempt
  from the English list: its grammar words overlap English by design.
"""

from __future__ import annotations

from collections import Counter

import regex

from pipeline.config import FilterConfig
from pipeline.records import Line

# Languages whose text is not in Latin script; every other catalog language is Latin-script.
SCRIPT_OF_LANG = {"amh": "Ethiopic", "tir": "Ethiopic", "ara": "Arabic", "arq": "Arabic", "ary": "Arabic"}

_URL_MENTION = regex.compile(r"https?://\S+|www\.\S+|[@#][\w.]+")
# Counting by deleting runs is several times faster than findall of single characters.
_NON_LETTERS = regex.compile(r"\P{L}+")
_OUTSIDE_SCRIPT = {name: regex.compile(rf"\P{{Script={name}}}+") for name in ("Latin", "Ethiopic", "Arabic")}
_CHAR_RUN = regex.compile(r"(\S)\1{9,}")
# Distinctive function words only: "la", "le", "du", "is", "in", "to", "na", "of", "by", "was",
# "her" are words of Swahili, Ewe, Bambara, Wolof, Afrikaans or Yoruba too and are left out.
_PIVOT_WORDS = {
    "eng": frozenset(
        "the and of that with was were for this have from they which been has their "
        "would there what you will are his it he she not but our or on".split()
    ),
    "fra": frozenset("les des est que qui dans pour une avec sont nous vous elle cette mais aussi leur".split()),
}
_PIVOT_EXEMPT = {"eng": {"pcm", "eng"}, "fra": {"fra"}}


REASONS = (
    "replacement_char",
    "too_short",
    "too_many_words",
    "urls_mentions",
    "not_letters",
    "wrong_script",
    "repetitive_chars",
    "repetitive_words",
    "pivot_language",
)


def script_of(lang: str) -> str:
    return SCRIPT_OF_LANG.get(lang, "Latin")


def check_text(text: str, lang: str, cfg: FilterConfig) -> str | None:
    """The reason `text` fails, or None when it passes."""
    if "\ufffd" in text:
        return "replacement_char"
    words = text.split()
    if len(words) < cfg.min_words or len(text) < cfg.min_chars:
        return "too_short"
    if len(words) > cfg.max_words:
        return "too_many_words"
    if len(_URL_MENTION.sub(" ", text).split()) < cfg.min_words:
        return "urls_mentions"
    compact = "".join(words)
    letters = _NON_LETTERS.sub("", compact)
    if len(letters) < cfg.min_letter_share * len(compact):
        return "not_letters"
    in_script = len(_OUTSIDE_SCRIPT[script_of(lang)].sub("", letters))
    if in_script < cfg.min_script_share * len(letters):
        return "wrong_script"
    top_char = max(map(compact.count, set(compact)))
    if top_char > cfg.max_char_repeat * len(compact) or _CHAR_RUN.search(compact):
        return "repetitive_chars"
    if len(words) >= 6:
        folded = [w.casefold().strip(".,;:!?\"'()") for w in words]
        if Counter(folded).most_common(1)[0][1] > cfg.max_word_repeat * len(words):
            return "repetitive_words"
        for pivot, vocab in _PIVOT_WORDS.items():
            if lang not in _PIVOT_EXEMPT[pivot] and sum(map(vocab.__contains__, folded)) > cfg.max_pivot_share * len(
                words
            ):
                return "pivot_language"
    return None


def filter_line(line: Line, cfg: FilterConfig) -> Line:
    """The line, or the line dropped with the reason of the first check it fails."""
    reason = check_text(line.text, line.lang, cfg)
    return line if reason is None else line.drop(reason)
