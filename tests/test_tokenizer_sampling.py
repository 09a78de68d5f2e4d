"""Temperature sampling arithmetic on hand-made counts, and the sample written from a corpus."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizer.config import SamplingConfig
from tokenizer.sampling import (
    EmptyLanguageError,
    allocate_chars,
    language_shares,
    pick_lines,
    resolve_languages,
    training_lines,
    write_sample,
)
from tests.support.tokenizer import TINY_TEXTS, write_corpus

COUNTS = {"hau": 1_000_000, "yor": 10_000, "fub": 100}


def quiet(*_):
    pass


def cfg(budget: int, **kwargs) -> SamplingConfig:
    return SamplingConfig(char_budget=budget, max_repeat=0, **kwargs)


def test_shares_follow_n_to_the_alpha():
    shares = language_shares(COUNTS, 0.5)
    # sqrt: 1000 : 100 : 10, normalised by 1110
    assert shares == pytest.approx({"hau": 1000 / 1110, "yor": 100 / 1110, "fub": 10 / 1110})
    assert language_shares(COUNTS, 0.0) == pytest.approx({k: 1 / 3 for k in COUNTS})
    total = sum(COUNTS.values())
    assert language_shares(COUNTS, 1.0) == pytest.approx({k: v / total for k, v in COUNTS.items()})


def test_upsample_gives_budget_times_share_not_share_times_size():
    targets = allocate_chars(COUNTS, 0.5, 111_000, "upsample")
    assert targets == {"hau": 100_000, "yor": 10_000, "fub": 1_000}  # fub: 10x its 100 chars


def test_max_repeat_caps_upsampling_and_redistributes():
    # alpha 0.5, budget 111,000 wants fub = 1,000 = 10 passes over its 100 chars.
    assert allocate_chars(COUNTS, 0.5, 111_000, "upsample", max_repeat=10) == {
        "hau": 100_000,
        "yor": 10_000,
        "fub": 1_000,
    }
    # With at most 4 passes fub gets 400; the 600 left is split 1000:100 between hau and yor.
    targets = allocate_chars(COUNTS, 0.5, 111_000, "upsample", max_repeat=4)
    assert targets == {"fub": 400, "hau": round(110_600 * 1000 / 1100), "yor": round(110_600 * 100 / 1100)}
    # 'cap' is the same as upsampling at most once.
    assert allocate_chars(COUNTS, 0.5, 111_000, "cap") == allocate_chars(COUNTS, 0.5, 111_000, "upsample", 1)


def test_cap_redistributes_what_small_languages_cannot_give():
    # Budget 111,000 at alpha 0.5 wants fub=1,000 (has 100) and yor=10,000 (has 10,000).
    targets = allocate_chars(COUNTS, 0.5, 111_000, "cap")
    assert targets["fub"] == 100 and targets["yor"] == 10_000
    assert targets["hau"] == 111_000 - 10_100  # everything left goes to the only open language
    # A budget above the whole corpus takes every language once and no more.
    assert allocate_chars(COUNTS, 0.3, 5_000_000, "cap") == COUNTS


def test_cap_water_fills_in_rounds():
    # alpha 0 = equal shares of 900 (300 each): only c is short (has 100); the 800 left is
    # split 400/400 between a and b, and now b is short (has 350); a gets the remaining 450.
    counts = {"a": 10_000, "b": 350, "c": 100}
    assert allocate_chars(counts, 0.0, 900, "cap") == {"a": 450, "b": 350, "c": 100}


def test_language_without_text_is_named_row36():
    with pytest.raises(EmptyLanguageError, match="no training text for language.*twi"):
        allocate_chars({"hau": 50, "twi": 0}, 0.3, 1000, "upsample")


def test_pick_lines_repeats_full_passes_then_a_random_part():
    lengths = np.array([10, 20, 30, 40])  # 100 chars
    repeats = pick_lines(lengths, 250, np.random.default_rng(0))
    assert set(repeats) <= {2, 3} and (repeats >= 2).all()
    drawn = int((repeats * lengths).sum())
    assert 250 <= drawn < 250 + lengths.max()
    same = pick_lines(lengths, 250, np.random.default_rng(0))
    assert (same == repeats).all()  # deterministic given the seed
    assert int((pick_lines(lengths, 100, np.random.default_rng(1)) * lengths).sum()) == 100


def test_training_lines_split_breaks_and_cut_long_lines_at_spaces():
    text = "Ẹ kú àárọ̀\r\nṢé dáadáa ni?\n\n" + "ọ̀rọ̀ " * 30
    lines = training_lines(text, 40)
    assert lines[:2] == ["Ẹ kú àárọ̀", "Ṣé dáadáa ni?"]
    assert all(len(line) <= 40 for line in lines)
    assert all("\n" not in line and "\r" not in line for line in lines)
    # Nothing lost but the cut spaces.
    assert "".join(lines[2:]).replace(" ", "") == ("ọ̀rọ̀" * 30)
    assert training_lines("x" * 50, 16)[0] == "x" * 16  # no space: hard cut


def test_training_lines_normalise_to_nfc():
    nfd = "e\u0323\u0301"  # e + dot below + acute (NFD of ẹ́)
    assert training_lines(nfd, 100) == ["\u1eb9\u0301"]


def test_write_sample_is_deterministic_and_meets_targets(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", TINY_TEXTS)
    langs = resolve_languages(corpus, [])
    runs = []
    for name in ("a.txt", "b.txt"):
        samples = write_sample(corpus, langs, tmp_path / name, cfg(20_000, seed=7), log=quiet)
        runs.append((tmp_path / name).read_text(encoding="utf-8"))
    assert runs[0] == runs[1]
    for lang, sample in samples.items():
        longest = max(len(t) for t in TINY_TEXTS[lang])
        assert sample.target_chars <= sample.drawn_chars < sample.target_chars + longest
    other = write_sample(corpus, langs, tmp_path / "c.txt", cfg(20_000, seed=8), log=quiet)
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") != runs[0]
    assert {k: v.target_chars for k, v in other.items()} == {k: v.target_chars for k, v in samples.items()}


def test_only_train_split_is_sampled(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"yor": ["Ọmọ náà ń lọ."]}, {"yor": ["VALIDONLY line"]})
    write_sample(corpus, ["yor"], tmp_path / "s.txt", cfg(1000), log=quiet)
    text = (tmp_path / "s.txt").read_text(encoding="utf-8")
    assert "Ọmọ náà" in text and "VALIDONLY" not in text


def test_configured_language_missing_from_corpus_is_named_row36(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"yor": ["Ọmọ náà ń lọ."]})
    with pytest.raises(EmptyLanguageError, match="kin"):
        resolve_languages(corpus, ["yor", "kin"])
