"""The stage on a corpus-layout folder built from real raw files of the shared data."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from common.corpus import iter_texts, list_languages
from tokenizer import load_tokenizer
from tokenizer.config import ReportConfig, SamplingConfig, SentencePieceConfig, TokenizerConfig
from tokenizer.spm_train import load_processor
from tokenizer.train import run_stage
from tests.support.tokenizer import REAL_LINE_FILES, corpus_from_line_files


@pytest.fixture(scope="module")
def real(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("real")
    corpus = corpus_from_line_files(root / "corpus", data_dir, max_lines=400)
    cfg = TokenizerConfig(
        corpus_dir=corpus,
        out_dir=root / "tokenizer",
        sampling=SamplingConfig(char_budget=200_000),
        spm=SentencePieceConfig(vocab_size=1000),
        report=ReportConfig(max_lines=100),
    )
    return corpus, run_stage(cfg, log=lambda *_: None, progress=False)


def test_round_trip_and_same_ids_on_every_language(real):
    corpus, out = real
    tok, sp = load_tokenizer(out), load_processor(out / "sentencepiece.model")
    assert list_languages(corpus) == sorted(REAL_LINE_FILES)
    for lang in list_languages(corpus):
        texts = list(iter_texts(corpus, lang, "valid")) + list(iter_texts(corpus, lang, "train"))[:50]
        assert texts, lang
        encoded = tok(texts, add_special_tokens=False)["input_ids"]
        for text, ids in zip(texts, encoded):
            assert ids == sp.encode(text), (lang, text)
            assert tok.unk_token_id not in ids, (lang, text)
        # NFD input (Yoruba, Igbo tone marks decomposed) decodes to the NFC corpus text.
        nfd = [unicodedata.normalize("NFD", t) for t in texts]
        assert tok.batch_decode(tok(nfd, add_special_tokens=False)["input_ids"]) == texts, lang


def test_report_has_no_unknown_tokens_on_held_out_lines(real):
    _, out = real
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["languages"]) == set(REAL_LINE_FILES)
    assert report["total_unk_tokens"] == 0 and report["total_roundtrip_errors"] == 0
    for lang, row in report["languages"].items():
        assert row["lines"] > 0 and row["tokens"] > 0, lang
    # Temperature sampling with alpha 0.3 narrows the spread of shares compared with sizes.
    rows = report["languages"].values()
    sizes = [r["train_chars_available"] for r in rows]
    shares = [r["sample_share"] for r in rows]
    assert max(shares) / min(shares) < max(sizes) / min(sizes)


@pytest.fixture(scope="module")
def real_tools(real):
    corpus, out = real
    lines = [t for lang in list_languages(corpus) for t in list(iter_texts(corpus, lang, "valid"))[:20]]
    return load_tokenizer(out), load_processor(out / "sentencepiece.model"), lines


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mixed_real_lines_and_odd_characters_round_trip_row35(real_tools, data):
    tok, sp, lines = real_tools
    chars = st.characters(exclude_categories=("Cs", "Cn"), exclude_characters="\u2581")
    parts = data.draw(st.lists(st.one_of(st.sampled_from(lines), st.text(chars, max_size=8)), min_size=1, max_size=4))
    text = " ".join(parts)
    assume(not any(special in unicodedata.normalize("NFC", text) for special in tok.all_special_tokens))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert ids == sp.encode(unicodedata.normalize("NFC", text))
    assert tok.decode(ids) == unicodedata.normalize("NFC", text)
