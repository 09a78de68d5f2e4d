"""Pure text helpers of the corpus stage: normalisation policy, keys, eval-set parsing, decontam index."""

from __future__ import annotations

import unicodedata

from common.eval_sets import EvalItem, iter_items, split_file, task_registry
from pipeline.config import DecontamConfig
from pipeline.decontam import EvalIndex
from pipeline.normalise import normalise_text
from pipeline.textkey import dedup_key, word_tokens
from tests.support import MULTILINGUAL_LINES
from tests.support.pipeline import NER_TEST, NEWS_HEADLINE, TWEET, YOSM_REVIEW, make_eval_dir


def test_normalise_keeps_every_combining_mark_and_is_idempotent():
    for lines in MULTILINGUAL_LINES.values():
        for text in lines:
            nfd = unicodedata.normalize("NFD", text)
            assert normalise_text(nfd) == unicodedata.normalize("NFC", text)
            assert normalise_text(normalise_text(nfd)) == normalise_text(nfd)
    # a tone mark with no precomposed form stays a combining character
    assert "\u0300" in normalise_text("ẹ̀")


def test_normalise_policy_details():
    assert normalise_text("a\u00a0b\u2009c\u3000d") == "a b c d"  # odd spaces -> space
    assert normalise_text("ìwé\u00adkíkà") == "ìwékíkà"  # soft hyphen removed
    assert normalise_text("\ufeffọmọ\u200b ilé\u2060") == "ọmọ ilé"  # BOM, ZWSP, WJ removed
    assert normalise_text("👨\u200d👩\u200d👧 \u200cok\u200d") == "👨\u200d👩\u200d👧 ok"  # ZWJ kept only inside
    assert normalise_text("a\x00b\x1bc\x7fd") == "abcd"  # control characters
    assert normalise_text("one\r\ntwo\rthree\u2028four") == "one\ntwo\nthree\nfour"
    assert normalise_text("caf\u00c3\u00a9 dey") == "café dey"  # mojibake repaired
    assert normalise_text("ፊደል፡ገበታ") == "ፊደል፡ገበታ"  # Ethiopic wordspace kept


def test_dedup_key_ignores_case_space_punctuation_not_tones():
    assert dedup_key("ỌMỌ  náà, ń lọ!") == dedup_key(unicodedata.normalize("NFD", "ọmọ náà ń lọ"))
    assert dedup_key("ọkọ̀ náà") != dedup_key("ọkọ náà")
    assert word_tokens("N'ụlọ ya: 12 ụmụ!") == ["n", "ụlọ", "ya", "12", "ụmụ"]


def _items(tmp_path, names, langs, split="test"):
    registry, data = task_registry(), make_eval_dir(tmp_path).parent
    return [
        item
        for name in names
        for lang in langs
        if lang in registry[name].langs and split_file(registry[name], lang, split, data).is_file()
        for item in iter_items(registry[name], lang, split, data)
    ]


def test_eval_sets_parse_each_format_quirk(tmp_path):
    items = _items(tmp_path, ["masakhaner1", "masakhanews", "yosm", "afrisenti"], ["yor", "hau"])
    texts = {(i.eval_set, i.text) for i in items}
    assert ("masakhaner1", NER_TEST) in texts  # -DOCSTART- skipped
    [news] = [i.text for i in items if i.eval_set == "masakhanews"]  # headline + article
    assert news.startswith(NEWS_HEADLINE + "\n")
    assert news.endswith('Za a fara shi a wata mai zuwa "nan take".')  # CSV quoting undone
    assert ("yosm", YOSM_REVIEW) in texts  # \r inside the review
    assert ("afrisenti", TWEET) in texts  # literal quotes kept
    assert all(":" in i.where for i in items)  # file:line for the audit


def _item(text, name="set"):
    return EvalItem(name, "test", "yor", text, "f:1")


def test_eval_index_matches_whole_short_items_and_8grams(tmp_path):
    index = EvalIndex(DecontamConfig(chunk_letters=0))
    index.add(_item("Adé lọ sí Ìbàdàn lánàá", "short5"))  # 5 words: matched whole
    index.add(_item(NER_TEST, "long"))  # 17 words: any 8-gram
    index.add(_item("Ẹ kú àárọ̀", "tiny"))  # < 5 words: ignored
    assert index.match("Ní ọjọ́ kan, ADÉ lọ sí ìbàdàn  lánàá ni.") == "short5"
    assert index.match("Adé lọ sí Ìbàdàn") is None
    words = NER_TEST.split()
    assert index.match("Bẹ́ẹ̀ ni " + " ".join(words[4:12]).upper() + " rárá") == "long"
    assert index.match(" ".join(words[4:11])) is None  # 7 words of a long item: no
    assert index.match("Ẹ kú àárọ̀ o") is None and index.ignored_short == 1
    full = EvalIndex(DecontamConfig())
    for item in _items(tmp_path, ["yosm"], ["yor"]):
        full.add(item)
    assert full.match(unicodedata.normalize("NFD", YOSM_REVIEW.upper())) == "yosm"


def test_short_sentences_of_a_long_item_are_matched_whole():
    index = EvalIndex(DecontamConfig(chunk_letters=0))
    article = (
        "Gwamnati ta sanar da sabon shiri\n"  # 6-word headline
        "Ministan ya ce za a fara shirin a watan gobe. Manoma sun yi murna sosai da labarin."
    )
    index.add(_item(article, "news"))
    assert index.match("Labari: gwamnati ta sanar da sabon shiri") == "news"  # the headline alone
    assert index.match("Manoma sun yi murna sosai da labarin") == "news"  # a 7-word sentence
    assert index.match("Manoma sun yi murna sosai") is None  # part of a sentence
