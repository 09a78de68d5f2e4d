"""Continued pretraining from a checkpoint (`init_from`), vocabulary reduction and extension.

Every checkpoint is built here: tiny XLM-R masked LMs with tokenizers trained by the tokenizer
stage's own code, and one saved by our own pretraining on two languages, then adapted to others.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from common.config import ConfigError, load_config
from pretrain import init_from, train, vocab
from pretrain.config import ModelConfig, PretrainConfig
from pretrain.model import build_model
from tests.support.pretrain import (
    files_of,
    final_weights,
    make_corpus,
    metric_records,
    run_args,
    run_inprocess,
    same_weights,
    sentences,
)

REPO = Path(__file__).resolve().parents[1]
BLOCK_LEN = 32  # TEST_SETTINGS' data.block_len


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def texts():
    return {lang: sentences(lang, 120) for lang in ("amh", "hau", "swa", "yor")}


@pytest.fixture(scope="module")
def corpus_dir(texts, tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "corpus", texts)


def _tokenizer(folder: Path, texts_by_lang: dict, model_type: str = "unigram") -> Path:
    """A tokenizer trained by the tokenizer stage (sampling, SentencePiece, conversion)."""
    from tokenizer.config import ReportConfig, SamplingConfig, SentencePieceConfig, TokenizerConfig
    from tests.support.tokenizer import write_corpus
    from tokenizer.train import run_stage

    corpus = write_corpus(folder.parent / f"{folder.name}-corpus", texts_by_lang)
    cfg = TokenizerConfig(
        corpus_dir=corpus,
        out_dir=folder,
        sampling=SamplingConfig(char_budget=200_000),
        spm=SentencePieceConfig(model_type=model_type, vocab_size=600, hard_vocab_limit=False),
        report=ReportConfig(max_lines=100),
    )
    return run_stage(cfg, log=lambda *_: None, progress=False)


@pytest.fixture(scope="module")
def tok_dirs(texts, tmp_path_factory):
    """The checkpoint's tokenizer (hau, yor), ours for the new languages (amh, hau, swa), and a
    BPE one (hau, yor)."""
    root = tmp_path_factory.mktemp("tokenizers")
    return {
        "checkpoint": _tokenizer(root / "checkpoint", {k: texts[k] for k in ("hau", "yor")}),
        "ours": _tokenizer(root / "ours", {k: texts[k] for k in ("amh", "hau", "swa")}),
        "bpe": _tokenizer(root / "bpe", {k: texts[k] for k in ("hau", "yor")}, model_type="bpe"),
    }


def load_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def tiny_mlm(tokenizer, tie: bool = True):
    """A tiny XLM-R masked LM (our build_model), with random LM-head biases so slicing them shows."""
    torch.manual_seed(0)
    shape = ModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, ffn_size=64, dropout=0.0, attention_dropout=0.0, tie_embeddings=tie
    )
    model = build_model(shape, tokenizer, BLOCK_LEN)
    with torch.no_grad():
        model.lm_head.bias.normal_()
        model.lm_head.decoder.bias.normal_()  # the same tensor when tied; the one used when untied
    return model.eval()


def save_checkpoint(folder: Path, model, tokenizer) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reload(folder: Path):
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(str(folder)).eval(), load_tokenizer(folder)


def logits(model, input_ids, attention_mask):
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits


# ---- reduction -------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_reduction_keeps_logits_over_kept_pieces(tie, texts, tok_dirs, tmp_path):
    tokenizer = load_tokenizer(tok_dirs["checkpoint"])
    model = tiny_mlm(tokenizer, tie)
    counts = vocab.count_pieces(tokenizer, texts["hau"])  # yor-only pieces are dropped
    keep = vocab.kept_ids(tokenizer, counts, min_count=1)
    small, small_tok = vocab.reduce_vocab(model, tokenizer, keep)
    init_from.save_folder(small, small_tok, tmp_path / "reduced", {})
    small, small_tok = reload(tmp_path / "reduced")

    assert len(small_tok) == small.config.vocab_size == len(keep) < len(tokenizer)
    assert small.get_input_embeddings().weight.shape[0] == small.lm_head.bias.shape[0] == len(keep)
    assert small.config.tie_word_embeddings == tie
    assert (small.lm_head.decoder.weight is small.get_input_embeddings().weight) == tie
    assert small_tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert small_tok.mask_token_id == len(keep) - 1

    # Text made of kept pieces: the same segmentation, renumbered, and the same logits over them.
    new_id = torch.full((len(tokenizer),), -1, dtype=torch.long)
    new_id[torch.as_tensor(keep)] = torch.arange(len(keep))
    lines = texts["hau"][:6] + ["yaron <mask>"]
    batch = tokenizer(lines, padding=True, return_tensors="pt")
    ids = new_id[batch["input_ids"]]
    assert bool((ids >= 0).all())
    assert torch.equal(small_tok(lines, padding=True, return_tensors="pt")["input_ids"], ids)
    torch.testing.assert_close(
        logits(small, ids, batch["attention_mask"]),
        logits(model, batch["input_ids"], batch["attention_mask"])[..., keep],
    )


def test_min_count_keeps_frequent_pieces_and_always_special_and_byte_pieces(texts, tok_dirs):
    tokenizer = load_tokenizer(tok_dirs["checkpoint"])
    counts = vocab.count_pieces(tokenizer, texts["hau"] + texts["yor"][:10])
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    always = set(tokenizer.all_special_ids) | {i for i, p in enumerate(pieces) if vocab.BYTE_PIECE.fullmatch(p)}
    assert len(always) == 5 + 256
    for min_count in (1, 3):
        keep = vocab.kept_ids(tokenizer, counts, min_count)
        assert set(keep) == always | set(np.flatnonzero(counts >= min_count))
    assert 0 < len(vocab.kept_ids(tokenizer, counts, 3)) < len(vocab.kept_ids(tokenizer, counts, 1))


def test_bpe_reduction_segments_kept_text_as_before(texts, tok_dirs):
    tokenizer = load_tokenizer(tok_dirs["bpe"])
    assert vocab.tokenizer_spec(tokenizer)["model"]["type"] == "BPE"
    counts = vocab.count_pieces(tokenizer, texts["hau"])
    keep = vocab.kept_ids(tokenizer, counts, min_count=1)
    # Pieces never output on hau text but merged on the way to one are kept too.
    assert len(keep) > len(set(np.flatnonzero(counts > 0)) | set(tokenizer.all_special_ids))
    _, small_tok = vocab.reduce_vocab(tiny_mlm(tokenizer), tokenizer, keep)
    assert len(small_tok) == len(keep) < len(tokenizer)
    new_id = {old: new for new, old in enumerate(keep)}
    for line in texts["hau"][:40]:
        assert small_tok(line)["input_ids"] == [new_id[i] for i in tokenizer(line)["input_ids"]], line
    small_tok(texts["yor"][0])  # text with dropped pieces still encodes (other pieces or bytes)


# ---- extension -------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_extension_keeps_old_vectors_and_reaches_every_new_piece(tie, texts, tok_dirs, tmp_path):
    tokenizer, ours = load_tokenizer(tok_dirs["checkpoint"]), load_tokenizer(tok_dirs["ours"])
    model = tiny_mlm(tokenizer, tie)
    pieces = vocab.missing_pieces(tokenizer, ours)
    assert pieces and not set(pieces) & set(tokenizer.get_vocab())
    assert any("\u1200" <= ch <= "\u137f" for p in pieces for ch in p)  # Ge'ez, new to the checkpoint
    assert not [p for p in pieces if vocab.BYTE_PIECE.fullmatch(p) or p in ours.all_special_tokens]
    big, big_tok = vocab.extend_vocab(model, tokenizer, pieces)
    init_from.save_folder(big, big_tok, tmp_path / "extended", {})
    big, big_tok = reload(tmp_path / "extended")

    old = len(tokenizer)
    assert len(big_tok) == big.config.vocab_size == old + len(pieces)
    before, after = model.state_dict(), big.state_dict()
    for name in vocab.VOCAB_TENSORS:  # old pieces keep their vectors, bit for bit
        assert torch.equal(after[name][:old], before[name]), name
    segment = tokenizer.backend_tokenizer.model.tokenize
    for i, piece in enumerate(pieces):  # a new row is the mean of its old segmentation's rows
        ids = [t.id for t in segment(piece)]
        for name in vocab.VOCAB_TENSORS:
            torch.testing.assert_close(after[name][old + i], before[name][ids].mean(0))
    for i, piece in enumerate(pieces):  # every new piece is what its own text encodes to
        assert [t.id for t in big_tok.backend_tokenizer.model.tokenize(piece)] == [old + i], piece
        if piece.startswith("\u2581") and len(piece) > 1:
            assert big_tok(piece[1:], add_special_tokens=False)["input_ids"] == [old + i], piece
    batch = tokenizer(texts["yor"][:4], padding=True, return_tensors="pt")
    torch.testing.assert_close(
        logits(big, batch["input_ids"], batch["attention_mask"])[..., :old],
        logits(model, batch["input_ids"], batch["attention_mask"]),
    )


def test_extension_needs_a_unigram_tokenizer(tok_dirs):
    bpe, ours = load_tokenizer(tok_dirs["bpe"]), load_tokenizer(tok_dirs["ours"])
    with pytest.raises(ValueError, match="needs a Unigram tokenizer"):
        vocab.extend_vocab(tiny_mlm(bpe), bpe, vocab.missing_pieces(bpe, ours))


# ---- settings and refused checkpoints --------------------------------------------------------
def test_vocab_settings_need_init_from():
    with pytest.raises(ConfigError, match="vocab.reduce=true .* set init_from"):
        load_config(PretrainConfig, None, ["vocab.reduce=true"])
    with pytest.raises(ConfigError, match="vocab.min_count must be >= 1, got 0"):
        load_config(PretrainConfig, None, ["init_from=x", "vocab.min_count=0"])


@pytest.fixture(scope="module")
def refused_checkpoints(tok_dirs, tmp_path_factory):
    """Folders that must be refused, and the words the error must contain."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        GPT2Config,
        GPT2LMHeadModel,
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
        XLMRobertaForSequenceClassification,
    )

    root = tmp_path_factory.mktemp("refused")
    tokenizer = load_tokenizer(tok_dirs["checkpoint"])
    n = len(tokenizer)
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    xlmr = dict(small, pad_token_id=1, max_position_embeddings=BLOCK_LEN + 2, type_vocab_size=1)
    cases = {
        "bert": (BertForMaskedLM(BertConfig(vocab_size=n, **small)), ["a 'bert' checkpoint", "XLM-R/RoBERTa"]),
        "gpt2": (GPT2LMHeadModel(GPT2Config(vocab_size=n, n_embd=32, n_layer=1, n_head=2)), ["a 'gpt2' checkpoint"]),
        "mismatch": (
            XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=n + 7, **xlmr)),
            [f"tokenizer has {n} ids", f"embeddings have {n + 7} rows"],
        ),
        "classifier": (
            XLMRobertaForSequenceClassification(XLMRobertaConfig(vocab_size=n, **xlmr)),
            ["XLMRobertaForSequenceClassification", "not a masked LM"],
        ),
        "short": (
            XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=n, **dict(xlmr, max_position_embeddings=20))),
            ["data.block_len=32 is too long", "at most data.block_len=18"],
        ),
    }
    folders = {name: (save_checkpoint(root / name, model, tokenizer), words) for name, (model, words) in cases.items()}
    folders["bpe-extend"] = (
        save_checkpoint(
            root / "bpe-extend", tiny_mlm(load_tokenizer(tok_dirs["bpe"])), load_tokenizer(tok_dirs["bpe"])
        ),
        ["vocab.extend=true needs a Unigram"],
    )
    folders["offline-hub"] = (Path("nobody-here/no-such-model"), ["not available from the Hugging Face Hub"])
    return folders


@pytest.mark.parametrize("case", ["bert", "gpt2", "mismatch", "classifier", "short", "bpe-extend", "offline-hub"])
def test_wrong_checkpoint_is_refused_before_training(case, refused_checkpoints, corpus_dir, tok_dirs, tmp_path, capsys):
    folder, words = refused_checkpoints[case]
    out = tmp_path / "run"
    extra = ["vocab.extend=true"] if case == "bpe-extend" else []
    code = train.main(run_args(corpus_dir, tok_dirs["ours"], out, f"init_from={folder}", *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert str(folder) in err
    for word in words:
        assert word in err
    assert not out.exists()  # nothing written


# ---- runs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_run(corpus_dir, tok_dirs, tmp_path_factory):
    """A model saved by our own pretraining on hau and yor: the checkpoint adapted below."""
    out = tmp_path_factory.mktemp("source") / "run"
    run_inprocess(corpus_dir, tok_dirs["checkpoint"], out, "data.langs=[hau, yor]")
    return out


def test_continued_pretraining_starts_from_the_checkpoint(source_run, corpus_dir, tok_dirs, tmp_path, capsys):
    checkpoint = source_run / "final"
    out = tmp_path / "adapted"
    # tokenizer_dir names a folder that does not exist: the checkpoint's own tokenizer is used.
    result = run_inprocess(corpus_dir, tmp_path / "no-tokenizer", out, f"init_from={checkpoint}")
    assert result.final_dir is not None

    # Step 0 evaluates the checkpoint itself: the source run's last numbers, on the same targets.
    start = metric_records(out, "eval")[0]
    assert start["step"] == 0
    last = metric_records(source_run, "eval")[-1]["langs"]
    for lang in ("hau", "yor"):
        assert start["langs"][lang] == last[lang], lang
    assert set(metric_records(out, "eval")[-1]["langs"]) == {"amh", "hau", "swa", "yor"}
    final, tokenizer = reload(out / "final")
    assert final.config.vocab_size == len(tokenizer) == len(load_tokenizer(checkpoint))

    # The config echo and the manifest record where the run started and a hash of those weights.
    run = json.loads((out / "run.json").read_text())
    assert set(run["inputs"]) == {"corpus_hash", "init_hash"}
    assert run["inputs"]["init_hash"] == init_from.checkpoint_hash(checkpoint)
    assert {"vocab.reduce", "vocab.min_count", "vocab.extend"} <= set(run["settings"])
    assert not [k for k in json.loads((source_run / "run.json").read_text())["settings"] if k.startswith("vocab.")]
    assert yaml.safe_load((out / "config.yaml").read_text())["init_from"] == str(checkpoint)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["init_from"]["init_hash"] == run["inputs"]["init_hash"]
    assert manifest["inputs"] == run["inputs"]

    # Same command: skipped. Other weights in the checkpoint: refused, naming the input.
    assert run_inprocess(corpus_dir, tmp_path / "no-tokenizer", out, f"init_from={checkpoint}").skipped
    changed = tmp_path / "changed"
    shutil.copytree(checkpoint, changed)
    model, tok = reload(changed)
    with torch.no_grad():
        model.lm_head.dense.bias.add_(0.01)
    save_checkpoint(changed, model, tok)
    with pytest.raises(ConfigError, match="input init_hash"):
        run_inprocess(corpus_dir, tmp_path / "no-tokenizer", out, f"init_from={changed}")
    # A run folder instead of its final/: a hint.
    with pytest.raises(ConfigError, match="did you mean .*final"):
        run_inprocess(corpus_dir, tmp_path / "no-tokenizer", tmp_path / "other", f"init_from={source_run}")


@pytest.mark.parametrize("change", ["reduce", "extend"])
def test_changed_vocabulary_run_resumes_bit_identical(change, source_run, corpus_dir, tok_dirs, tmp_path):
    checkpoint = source_run / "final"
    settings = {
        "reduce": ["vocab.reduce=true", "vocab.min_count=2", "data.langs=[amh, hau]"],
        "extend": ["vocab.extend=true"],
    }[change]
    args = (corpus_dir, tok_dirs["ours"], tmp_path / "run", f"init_from={checkpoint}", *settings)
    out = tmp_path / "run"
    run_inprocess(*args)
    before = len(load_tokenizer(checkpoint))
    after = len(load_tokenizer(out / "final"))
    assert (after < before) if change == "reduce" else (after > before)
    record = json.loads((out / "init" / init_from.RECORD).read_text())["changes"]
    assert record["pieces_after"] == after
    assert json.loads((out / "manifest.json").read_text())["init_from"]["vocab"] == record
    if change == "extend":
        assert "tokenizer_hash" in json.loads((out / "run.json").read_text())["inputs"]

    # Killed after step 9's checkpoint: the prepared folder is rebuilt, the run resumes, and ends
    # exactly as the uninterrupted one.
    weights, metrics = final_weights(out), (out / "metrics.jsonl").read_bytes()
    rounds = files_of(out / "selection", "*")
    for name in ("final", "init", "checkpoints/step-0000012"):
        shutil.rmtree(out / name)
    (out / "manifest.json").unlink()
    result = run_inprocess(*args)
    assert (out / "init" / init_from.RECORD).exists() and not result.skipped
    assert same_weights(final_weights(out), weights)
    assert (out / "metrics.jsonl").read_bytes() == metrics
    assert files_of(out / "selection", "*") == rounds


def test_make_pretrain_init_skips_the_tokenizer_stage(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k != "MAKEFLAGS"}

    def dry_run(*args):
        proc = subprocess.run(
            ["make", "-n", "-C", str(REPO), "pretrain", f"OUT={tmp_path}", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    plain = dry_run()
    assert "tokenizer.train" in plain and "init_from" not in plain
    adapted = dry_run("INIT=/models/afro-ckpt/")
    assert "tokenizer.train" not in adapted and "pipeline.run" in adapted
    assert "init_from=/models/afro-ckpt/" in adapted
    assert f"out_dir={tmp_path}/pretrain/tiny-loss-from-afro-ckpt" in adapted
    extended = dry_run("INIT=/models/afro-ckpt", "PRETRAIN_ARGS=vocab.extend=true")
    assert "tokenizer.train" in extended and "vocab.extend=true" in extended


def test_roberta_checkpoint_with_byte_level_bpe_reduces_and_trains(texts, corpus_dir, tmp_path, capsys):
    """The other family: RoBERTa with a byte-level BPE tokenizer (pieces marked by Ġ, not ▁)."""
    from tokenizers import ByteLevelBPETokenizer, Tokenizer, processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForMaskedLM

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        texts["hau"] + texts["yor"],
        vocab_size=500,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    backend = Tokenizer.from_str(trainer.to_str())
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    torch.manual_seed(0)
    model = RobertaForMaskedLM(
        RobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=BLOCK_LEN + 2,
            pad_token_id=1,
            type_vocab_size=1,
        )
    ).eval()
    folder = save_checkpoint(tmp_path / "roberta", model, tokenizer)

    keep = vocab.kept_ids(tokenizer, vocab.count_pieces(tokenizer, texts["hau"]), min_count=1)
    small, small_tok = vocab.reduce_vocab(model, tokenizer, keep)
    assert len(small_tok) == len(keep) < len(tokenizer)
    batch = tokenizer(texts["hau"][:4], padding=True, return_tensors="pt")
    ids = small_tok(texts["hau"][:4], padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(torch.as_tensor(keep)[ids], batch["input_ids"])
    torch.testing.assert_close(
        logits(small.eval(), ids, batch["attention_mask"]),
        logits(model, batch["input_ids"], batch["attention_mask"])[..., keep],
    )

    # Whole-word masking looks for ▁: refused up front. Plain masking trains, reduced to our text.
    assert (
        train.main(
            run_args(corpus_dir, tmp_path / "none", tmp_path / "ww", f"init_from={folder}", "masking.whole_word=true")
        )
        == 2
    )
    assert "masking.whole_word=true" in capsys.readouterr().err and not (tmp_path / "ww").exists()
    out = tmp_path / "run"
    run_inprocess(
        corpus_dir,
        tmp_path / "none",
        out,
        f"init_from={folder}",
        "vocab.reduce=true",
        "data.langs=[hau]",
        "selection.blocks_per_round=8",
        "selection.candidates_per_round=24",
    )  # hau alone: 37 blocks
    final, final_tok = reload(out / "final")
    assert final.config.model_type == "roberta" and final.config.vocab_size == len(final_tok) < len(tokenizer)
