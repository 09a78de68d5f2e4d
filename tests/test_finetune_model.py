"""Model folders that cannot work are refused before training."""

from __future__ import annotations

import json
import shutil

import pytest

from finetune.model import ModelFolderError, check_model_folder
from finetune.run import main
from tests.support.finetune import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "final")


def copy(src, tmp_path, name="m"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def test_good_folder_passes(tiny_model):
    checked = check_model_folder(tiny_model, 256)
    assert checked.max_length == 128  # the position table (130 - padding offset 2) wins


@pytest.mark.parametrize(
    "remove, message",
    [
        ("model.safetensors", r"no weights"),
        ("config.json", r"no config\.json"),
        ("tokenizer.json", r"no usable tokenizer"),
    ],
)
def test_incomplete_folder_row33(tiny_model, tmp_path, remove, message):
    folder = copy(tiny_model, tmp_path)
    (folder / remove).unlink()
    with pytest.raises(ModelFolderError, match=message):
        check_model_folder(folder, 128)


def test_truncated_weights_row33(tiny_model, tmp_path):
    folder = copy(tiny_model, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelFolderError, match=r"model\.safetensors: unreadable weights"):
        check_model_folder(folder, 128)


def test_tokenizer_larger_than_embedding_row33(tiny_model, tmp_path):
    folder = copy(tiny_model, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    big_texts = [f"wọ̀rọ̀ {i} ọ̀rọ̀{i} ilé{i} ልጁ{i} àárọ̀{i}" for i in range(300)]
    build_tiny_tokenizer(folder, big_texts, vocab_size=2000)
    with pytest.raises(ModelFolderError, match=r"vocabulary mismatch: the tokenizer has \d+ tokens"):
        check_model_folder(folder, 128)


def test_config_and_weights_disagree_row33(tiny_model, tmp_path):
    folder = copy(tiny_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] += 50
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match=r"vocab_size=\d+ but the weights' embedding has"):
        check_model_folder(folder, 128)


def test_entry_point_stops_before_training_row33(tiny_model, tmp_path, data_dir, capsys):
    folder = copy(tiny_model, tmp_path)
    (folder / "model.safetensors").unlink()
    out = tmp_path / "out"
    code = main([f"model={folder}", f"data_dir={data_dir}", f"out_dir={out}", "tasks=[yosm]", "seeds=[1]"])
    assert code == 2
    assert "no weights" in capsys.readouterr().err
    assert not (out / "results.csv").exists() and not (out / "runs").exists()


def test_tokenizer_stage_output_makes_a_usable_model_folder(tmp_path):
    """The tokenizer stage's real output (SentencePiece -> fast tokenizer) works here."""
    from tests.support.tokenizer import build_tiny_tokenizer as stage_tokenizer

    from finetune.features import IGNORE, ner_windows

    tok_dir = stage_tokenizer(tmp_path / "tok")
    folder = build_tiny_model(tmp_path / "final", tokenizer_dir=tok_dir)
    checked = check_model_folder(folder, 256)
    tok = checked.tokenizer
    assert tok.pad_token_id == 1 and tok.convert_ids_to_tokens(0) == "<s>"
    words = ["Ọmọ", "náà", "lọ", "sí", "Ìbàdàn", "ልጁ", "🙂", ""]
    windows = ner_windows(tok, [words], [[0, 0, 0, 0, 1, 0, 0, 0]], max_length=6, context_words=1)
    assert [l for w in windows for l in w.features["labels"] if l != IGNORE] == [0, 0, 0, 0, 1, 0, 0, 0]
