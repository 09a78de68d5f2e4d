"""Temperature-sampled training text for SentencePiece.

Arithmetic (pure, tested on hand-made counts in tests/test_tokenizer_sampling.py):
    q_i      = n_i^alpha / sum_j n_j^alpha           share of language i
    target_i = B * q_i                               characters drawn from language i
'upsample': a language with n_i < target_i is repeated: floor(target_i / n_i) full passes
            plus a random part of one more pass, so its share stays exactly q_i -- up to
            `max_repeat` x n_i characters (0 = no limit); beyond that it is capped like below.
'cap':      such a language gives all its n_i characters once (max_repeat = 1).
A capped language's unused share is spread over the others in proportion to their q,
repeated until nobody else hits its limit (water-filling); the total is min(B, sum of limits).
Draws are seeded per language, so the sample is a function of (counts, texts, seed) only.

The corpus is read once: the counting pass also writes each language's training lines to a
plain spill file beside the sample, and the draw reads that back (no gzip, JSON or NFC a second
time). Languages are counted in parallel, one process per core. Disk for the spill is about the
size of the train text; memory is one language's lines per process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import regex

from common.config import ConfigError
from common.corpus import iter_texts, list_languages
from common.io import atomic_write
from tokenizer.config import SamplingConfig

# stdlib re: the same character class, about twice as fast as `regex` for this search, which
# runs on every text.
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85\x0b\x0c]+")
_LAST_SPACE = regex.compile(r"\s(?=\S*$)")


class EmptyLanguageError(ConfigError):
    """A language named in the config has no training text."""


def language_shares(counts: dict[str, int], alpha: float) -> dict[str, float]:
    """q_i = n_i^alpha / sum_j n_j^alpha (languages with n_i = 0 must be rejected before)."""
    weights = {lang: float(n) ** alpha for lang, n in counts.items()}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


def allocate_chars(
    counts: dict[str, int], alpha: float, budget: int, policy: str, max_repeat: float = 0.0
) -> dict[str, int]:
    """Characters to draw from each language (see the module docstring)."""
    empty = sorted(lang for lang, n in counts.items() if n <= 0)
    if empty:
        raise EmptyLanguageError(f"no training text for language(s): {', '.join(empty)}")
    if policy not in ("upsample", "cap"):
        raise ValueError(f"sampling.small_language must be 'upsample' or 'cap', got {policy!r}")
    repeat = 1.0 if policy == "cap" else (max_repeat or float("inf"))
    limits = {lang: n * repeat for lang, n in counts.items()}
    return water_fill(language_shares(counts, alpha), limits, budget)


def water_fill(shares: dict[str, float], limits: dict[str, float], budget: int) -> dict[str, int]:
    """Split `budget` by `shares`; a language over its limit gets the limit, the rest re-split."""
    targets: dict[str, int] = {}
    open_langs = dict(shares)
    left = float(budget)
    while open_langs:
        mass = sum(open_langs.values())
        full = {lang for lang, q in open_langs.items() if limits[lang] <= left * q / mass}
        if not full:
            targets.update({lang: round(left * q / mass) for lang, q in open_langs.items()})
            break
        for lang in full:  # limited; its unused share goes back to the others
            targets[lang] = round(limits[lang])
            left -= limits[lang]
            del open_langs[lang]
    return targets


def training_lines(text: str, max_chars: int) -> list[str]:
    """NFC text -> SentencePiece input lines: no line breaks inside, none longer than max_chars.

    Long lines are cut at the last whitespace before the limit (hard cut if there is none).
    """
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if len(text) <= max_chars and not _LINE_BREAKS.search(text):  # the common case, fast
        return [text] if text.strip() else []
    lines = []
    for part in _LINE_BREAKS.split(text):
        while len(part) > max_chars:
            match = _LAST_SPACE.search(part[:max_chars])
            cut = match.start() if match and match.start() > 0 else max_chars
            lines.append(part[:cut])
            part = part[cut:].lstrip(" ")
        if part.strip():
            lines.append(part)
    return lines


def _lang_rng(seed: int, lang: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{lang}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def pick_lines(lengths: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """How often each line is drawn so that the drawn characters reach `target`.

    floor(target / n) full passes, then lines in a seeded random order until the
    remainder is reached (overshooting by less than one line).
    """
    total = int(lengths.sum())
    repeats = np.full(len(lengths), target // total, dtype=np.int64)
    remainder = target - int(repeats[0]) * total if len(lengths) else 0
    if remainder > 0:
        order = rng.permutation(len(lengths))
        cumulative = np.cumsum(lengths[order])
        take = int(np.searchsorted(cumulative, remainder)) + 1
        repeats[order[:take]] += 1
    return repeats


@dataclass
class LanguageSample:
    lang: str
    available_chars: int
    share: float
    target_chars: int
    drawn_chars: int = 0
    drawn_lines: int = 0

    @property
    def repeat_factor(self) -> float:
        return self.drawn_chars / self.available_chars


def spill_language(corpus_dir: Path, lang: str, max_chars: int, spill_path: Path) -> np.ndarray:
    """Length in characters of each training line of `lang` (train split only); the lines go to
    `spill_path`, joined by "\n" (training lines never contain one), for the draw."""
    lines = list(_iter_lines(corpus_dir, lang, max_chars))
    with open(spill_path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(lines))
    return np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))


def read_spill(spill_path: Path) -> list[str]:
    with open(spill_path, encoding="utf-8", newline="") as handle:  # newline="": no translation
        text = handle.read()
    return text.split("\n") if text else []


def resolve_languages(corpus_dir: Path, langs: Iterable[str]) -> list[str]:
    """The configured languages, or every language with train shards; errors name the culprit."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus_dir {corpus_dir} does not exist; run `make corpus` first")
    present = list_languages(corpus_dir)
    langs = list(langs) or present
    if not langs:
        raise EmptyLanguageError(f"corpus_dir {corpus_dir} has no <lang>/train-*.jsonl.gz shards")
    missing = [lang for lang in langs if lang not in present]
    if missing:
        raise EmptyLanguageError(
            f"no training text for language(s) {', '.join(missing)} in {corpus_dir} "
            f"(no {missing[0]}/train-*.jsonl.gz); remove them from `langs` or rebuild the corpus"
        )
    return sorted(langs)


def write_sample(
    corpus_dir: Path, langs: list[str], out_path: Path, cfg: SamplingConfig, log=print
) -> dict[str, LanguageSample]:
    """Write the temperature-sampled training text to `out_path`, one line per line."""
    max_line_chars = cfg.max_line_chars
    log(f"[tokenizer] counting train characters of {len(langs)} languages in {corpus_dir}")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix=".spill-", dir=out_path.parent) as spill_dir:
        spills = {lang: Path(spill_dir) / f"{index}.txt" for index, lang in enumerate(langs)}
        lengths = dict(zip(langs, _spill_all(corpus_dir, langs, max_line_chars, spills)))
        counts = {lang: int(lens.sum()) for lang, lens in lengths.items()}
        targets = allocate_chars(counts, cfg.alpha, cfg.char_budget, cfg.small_language, cfg.max_repeat)
        shares = language_shares(counts, cfg.alpha)
        samples = {lang: LanguageSample(lang, counts[lang], shares[lang], targets[lang]) for lang in langs}
        with atomic_write(out_path) as handle:
            for lang in langs:
                sample = samples[lang]
                _draw_language(handle, read_spill(spills[lang]), lengths[lang], sample, _lang_rng(cfg.seed, lang))
                spills[lang].unlink()
                log(
                    f"[tokenizer] sample {lang}: {counts[lang]:,} chars available, share {sample.share:.3f}, "
                    f"drew {sample.drawn_chars:,} chars (x{sample.repeat_factor:.2f})"
                )
    return samples


def _spill_all(corpus_dir: Path, langs: list[str], max_chars: int, spills: dict[str, Path]) -> list[np.ndarray]:
    """`spill_language` for every language, on all cores: reading the corpus is most of the
    sampling time, and languages are independent. Forked workers (cheap to start, nothing to
    import again); where fork is unavailable, one language after another."""
    jobs = [(corpus_dir, lang, max_chars, spills[lang]) for lang in langs]
    workers = min(os.cpu_count() or 1, len(jobs))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [spill_language(*job) for job in jobs]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.starmap(spill_language, jobs, chunksize=1)


def _draw_language(
    handle, lines: list[str], lengths: np.ndarray, sample: LanguageSample, rng: np.random.Generator
) -> None:
    """Write each line as often as `pick_lines` says, in corpus order (repeats side by side)."""
    if len(lines) != len(lengths):
        raise RuntimeError(f"spill file of {sample.lang} has {len(lines)} lines, counted {len(lengths)}")
    repeats = pick_lines(lengths, sample.target_chars, rng)
    drawn = np.flatnonzero(repeats)
    handle.write("".join((lines[i] + "\n") * int(repeats[i]) for i in drawn))
    sample.drawn_chars = int(lengths @ repeats)
    sample.drawn_lines = int(repeats.sum())


def _iter_lines(corpus_dir: Path, lang: str, max_chars: int) -> Iterator[str]:
    for text in iter_texts(corpus_dir, lang, "train"):
        yield from training_lines(text, max_chars)
