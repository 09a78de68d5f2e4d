"""The tokenizer stage end to end on tiny multilingual corpora."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from common.io import read_manifest
from tokenizer import TokenizerFolderError, load_bulk_encoder, load_tokenizer, tokenizer_hash
from tokenizer.config import ReportConfig, SamplingConfig, SentencePieceConfig, TokenizerConfig
from tokenizer.spm_train import load_processor
from tokenizer.train import main, run_stage
from tests.support.tokenizer import TINY_TEXTS, build_tiny_tokenizer, write_corpus

NFC = lambda text: unicodedata.normalize("NFC", text)  # noqa: E731


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return load_tokenizer(tiny_dir)


@pytest.fixture(scope="module")
def sp(tiny_dir):
    return load_processor(tiny_dir / "sentencepiece.model")


def tiny_config(corpus: Path, out: Path, **spm) -> TokenizerConfig:
    return TokenizerConfig(
        corpus_dir=corpus,
        out_dir=out,
        sampling=SamplingConfig(char_budget=30_000),
        spm=SentencePieceConfig(**{"vocab_size": 500, "hard_vocab_limit": False, **spm}),
        report=ReportConfig(max_lines=50),
    )


def test_folder_loads_offline_with_xlmr_layout(tiny_dir, tok):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(tiny_dir), local_files_only=True)
    assert (auto.bos_token_id, auto.pad_token_id, auto.eos_token_id, auto.unk_token_id) == (0, 1, 2, 3)
    assert auto.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert auto.mask_token == "<mask>" and auto.mask_token_id == len(auto) - 1
    assert auto.model_max_length == 512
    assert {
        "tokenizer.json",
        "tokenizer_config.json",
        "sentencepiece.model",
        "report.json",
        "report.md",
        "manifest.json",
        "config.yaml",
    } <= {p.name for p in tiny_dir.iterdir()}
    assert not [p for p in tiny_dir.iterdir() if p.name.startswith(".")]  # no work files left


def test_post_processor_wraps_single_and_pair_like_xlmr(tok, sp):
    a, b = "Ọmọ náà", "ልጁ 😀"
    ids_a, ids_b = sp.encode(a), sp.encode(b)
    assert tok(a)["input_ids"] == [0, *ids_a, 2]
    assert tok(a, b)["input_ids"] == [0, *ids_a, 2, 2, *ids_b, 2]
    padded = tok([a, a + " " + a], padding=True)["input_ids"]
    assert padded[0][-1] == tok.pad_token_id == 1


def test_mask_token_is_recognised_for_fill_mask(tok):
    ids = tok("Ọmọ náà ń lọ sí <mask>.")["input_ids"]
    assert ids.count(tok.mask_token_id) == 1


def test_same_ids_as_sentencepiece_and_lossless_on_every_language(tok, sp):
    for lang, texts in TINY_TEXTS.items():
        for text in texts:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert ids == sp.encode(text), (lang, text)
            assert tok.decode(ids) == text, (lang, text)
            assert tok.unk_token_id not in ids


@pytest.mark.parametrize(
    "variants",
    [
        # Yoruba ẹ́ (e + dot below + acute) precomposed, decomposed, and marks swapped.
        [
            "Ẹ́ kú àárọ̀ ọ̀rẹ́ mi",
            None,
            "E\u0301\u0323 ku\u0301 a\u0300a\u0301ro\u0300\u0323 o\u0300\u0323re\u0301\u0323 mi",
        ],
        # Igbo ị ụ ọ with tone: dot below + grave in both orders.
        ["Ọ̀ bụ̀ ezigbo mmadụ̀ ị̀", None, "O\u0300\u0323 bu\u0300\u0323 ezigbo mmadu\u0300\u0323 i\u0300\u0323"],
    ],
)
def test_nfc_nfd_and_reordered_marks_give_identical_ids_row34(tok, variants):
    nfc, _, reordered = variants
    nfd = unicodedata.normalize("NFD", nfc)
    assert len({nfc, nfd, reordered}) == 3  # really three different code point sequences
    ids = [tok(text)["input_ids"] for text in (nfc, nfd, reordered)]
    assert ids[0] == ids[1] == ids[2]
    assert tok.decode(ids[2], skip_special_tokens=True) == nfc


# Any text: mixes of corpus lines, Ge'ez, emoji, digits, whitespace runs and arbitrary
# code points. Excluded, and documented in docs/tokenizer.md: surrogates (not valid text),
# U+2581 (SentencePiece's own space marker, decodes as a space in SentencePiece too), and
# unassigned code points (Python's and the Rust normaliser's Unicode versions may differ).
ANY_CHAR = st.characters(exclude_categories=("Cs", "Cn"), exclude_characters="\u2581")
PIECES = st.sampled_from(
    [t for texts in TINY_TEXTS.values() for t in texts]
    + ["ሰላም ዓለም", "😀👍🏽🇳🇬", "0123456789", "  ", "\t", "\n", "ⵜⴰⵎⴰⵣⵉⵖⵜ", "中文字", "e\u0301\u0323", "<0x41>", "<0xF0>"]
)
TEXTS = st.lists(st.one_of(PIECES, st.text(ANY_CHAR, max_size=12)), max_size=6).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_any_text_round_trips_without_unk_row35(tok, sp, text):
    # Literal special-token strings are read as special tokens (documented; tested below).
    assume(not any(special in NFC(text) for special in tok.all_special_tokens))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == NFC(text)
    assert ids == sp.encode(NFC(text))


def test_never_seen_characters_fall_back_to_bytes_row35(tok):
    text = "ⵣ 𓀀 ꦲ 🦒"  # Tifinagh, hieroglyph, Javanese, emoji: not in the tiny corpus
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert tok.unk_token_id not in ids
    assert "<0xF0>" in pieces  # 4-byte characters became their bytes
    assert tok.decode(ids) == text


def test_literal_special_token_strings_are_special_tokens(tok):
    # The documented exception to "same ids as SentencePiece": like XLM-R, so fill-mask works.
    ids = tok("a <s> b </s> <pad><unk>", add_special_tokens=False)["input_ids"]
    assert [i for i in ids if i < 4] == [0, 2, 1, 3]
    assert tok.decode(ids, skip_special_tokens=True).split() == ["a", "b"]


def test_literal_byte_piece_spelling_stays_text(tok, sp):
    for text in ["<0x41>", "kóòdù <0xE1><0x0A> ni"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == sp.encode(text) and tok.decode(ids) == text


def _cli_error(capsys, *args) -> str:
    assert main(list(args)) == 2
    return capsys.readouterr().err


def test_configured_language_without_text_is_a_clear_error_row36(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", {"yor": TINY_TEXTS["yor"]})
    err = _cli_error(capsys, f"corpus_dir={corpus}", f"out_dir={tmp_path / 'tok'}", "langs=[yor, twi]")
    assert "twi" in err and "Traceback" not in err
    assert not (tmp_path / "tok" / "manifest.json").exists()


def test_language_with_empty_shard_is_a_clear_error_row36(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", {"yor": TINY_TEXTS["yor"], "kin": []})
    err = _cli_error(capsys, f"corpus_dir={corpus}", f"out_dir={tmp_path / 'tok'}")
    assert "no training text for language(s): kin" in err and "Traceback" not in err


def test_vocabulary_too_large_names_the_setting(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", {"hau": TINY_TEXTS["hau"]})
    err = _cli_error(
        capsys,
        f"corpus_dir={corpus}",
        f"out_dir={tmp_path / 'tok'}",
        "spm.vocab_size=5000",
        "sampling.char_budget=5000",
    )
    assert "spm.vocab_size=5000" in err and "hard_vocab_limit" in err


def test_unknown_setting_is_named(tmp_path, capsys):
    err = _cli_error(capsys, "spm.vocab_sise=10")
    assert "spm" in err and "vocab_sise" in err


def test_corpus_change_retrains_with_new_hash_and_unchanged_skips_row37(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "tok"
    texts = {lang: TINY_TEXTS[lang] for lang in ("yor", "amh", "hau")}
    write_corpus(corpus, texts)
    logs: list[str] = []
    run_stage(tiny_config(corpus, out), log=logs.append, progress=False)
    first = read_manifest(out)
    assert first["tokenizer_hash"] == tokenizer_hash(out)

    logs.clear()
    run_stage(tiny_config(corpus, out), log=logs.append, progress=False)
    assert any("skipped" in line for line in logs)
    assert read_manifest(out) == first  # nothing rewritten

    write_corpus(corpus, {**texts, "yor": texts["yor"] + ["Ìwé tuntun kan wà lórí tábìlì 📚."]})
    logs.clear()
    run_stage(tiny_config(corpus, out), log=logs.append, progress=False)
    second = read_manifest(out)
    assert not any("skipped" in line for line in logs)
    assert second["inputs"]["corpus_hash"] != first["inputs"]["corpus_hash"]
    assert second["tokenizer_hash"] == tokenizer_hash(out) != first["tokenizer_hash"]


def test_same_corpus_and_seed_give_the_same_tokenizer_anywhere(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", TINY_TEXTS)
    first = run_stage(tiny_config(corpus, tmp_path / "a"), log=lambda *_: None, progress=False)
    second = run_stage(tiny_config(corpus, tmp_path / "elsewhere" / "b"), log=lambda *_: None, progress=False)
    assert tokenizer_hash(first) == tokenizer_hash(second)


def test_config_change_retrains(tmp_path):
    corpus, out = write_corpus(tmp_path / "corpus", TINY_TEXTS), tmp_path / "tok"
    logs: list[str] = []
    run_stage(tiny_config(corpus, out), log=logs.append, progress=False)
    logs.clear()
    run_stage(tiny_config(corpus, out, vocab_size=450), log=logs.append, progress=False)
    assert not any("skipped" in line for line in logs)
    assert read_manifest(out)["config"]["spm"]["vocab_size"] == 450


def test_bpe_option_gives_sentencepiece_ids(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", TINY_TEXTS)
    out = run_stage(tiny_config(corpus, tmp_path / "tok", model_type="bpe"), log=lambda *_: None, progress=False)
    tok, sp = load_tokenizer(out), load_processor(out / "sentencepiece.model")
    for text in [t for texts in TINY_TEXTS.values() for t in texts] + ["ⵣ 🦒 123  x"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == sp.encode(text) and tok.decode(ids) == text


def test_report_covers_every_language(tiny_dir):
    report = json.loads((tiny_dir / "report.json").read_text(encoding="utf-8"))
    assert set(report["languages"]) == set(TINY_TEXTS)
    for row in report["languages"].values():
        assert row["lines"] == 2 and row["unk_tokens"] == 0 and row["roundtrip_errors"] == 0
        assert row["fertility"] >= 1.0
        assert 0 < row["sample_share"] < 1
    assert sum(r["sample_share"] for r in report["languages"].values()) == pytest.approx(1.0)
    assert "| yor |" in (tiny_dir / "report.md").read_text(encoding="utf-8")


def test_incomplete_folder_is_a_clear_error(tmp_path, tiny_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    with pytest.raises(TokenizerFolderError, match="missing tokenizer_config.json"):
        load_tokenizer(broken)
    # The hash is of the files, wherever they are (a model's final/ folder keeps both).
    assert tokenizer_hash(broken) != tokenizer_hash(tiny_dir)  # tokenizer.json alone
    (broken / "sentencepiece.model").write_bytes((tiny_dir / "sentencepiece.model").read_bytes())
    assert tokenizer_hash(broken) == tokenizer_hash(tiny_dir) == read_manifest(tiny_dir)["tokenizer_hash"]
    (broken / "tokenizer.json").unlink()
    with pytest.raises(TokenizerFolderError, match="missing tokenizer.json"):
        tokenizer_hash(broken)


def test_wrong_id_layout_is_a_clear_error(tmp_path, tiny_dir):
    config = json.loads((tiny_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["pad_token"] = "</s>"  # a folder whose pad id is 2, not 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    (other / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(TokenizerFolderError, match="pad_token_id"):
        load_tokenizer(other)


def test_a_converted_tokenizer_that_differs_from_sentencepiece_is_refused(sp):
    from tokenizers import normalizers

    from tokenizer.convert import to_fast_tokenizer
    from tokenizer.train import IdMismatchError, verify_same_ids

    fast = to_fast_tokenizer(sp, "unigram", 512)
    verify_same_ids(sp, fast, TINY_TEXTS["yor"])  # the real conversion passes
    fast.backend_tokenizer.normalizer = normalizers.NFC()  # forget SentencePiece's "▁" prefix
    with pytest.raises(IdMismatchError, match="differs from SentencePiece"):
        verify_same_ids(sp, fast, TINY_TEXTS["yor"])


def test_bulk_encoder_gives_the_fast_tokenizers_ids(tiny_dir, tok):
    texts = [t for texts in TINY_TEXTS.values() for t in texts]
    texts += [unicodedata.normalize("NFD", t) for t in texts] + ["ⵣ 🦒  x ", ""]
    assert load_bulk_encoder(tiny_dir)(texts) == tok(texts, add_special_tokens=False)["input_ids"]


def test_a_tied_best_segmentation_is_not_a_mismatch(sp):
    # Seen on Hausa tweets: "…lisss1" -> [lis, s, ss, 1] (tokenizers) vs [lis, ss, s, 1] (SentencePiece):
    # the same pieces, so the same score; both are best segmentations.
    from tokenizer.train import is_equal_score_tie

    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    single, double = next(
        (vocab[c], vocab[c + c]) for c in "abcdefghijklmnopqrstuvwxyz" if c in vocab and c + c in vocab
    )
    assert is_equal_score_tie(sp, [single, double], [double, single])
    assert not is_equal_score_tie(sp, [single, single, single], [single, double])  # same text, other score
    assert not is_equal_score_tie(sp, [single, double], [single, single])  # other text
