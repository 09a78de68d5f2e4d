"""publish/: checks before upload, the upload folder, the model card (offline dry run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from common.config import ConfigError
from publish.card import ResultsError, read_results
from publish.config import PublishConfig
from publish.example import choose_example, is_word_piece, masked_candidates
from publish.hub import main

from tests.support.publish import (  # noqa: F401  (fixtures)
    RUN,
    FakeHub,
    build_tiny_run,
    out,
    pristine,
    trained_out,
    trained_pristine,
)


def run_cli(out: Path, *extra: str) -> int:
    return main(["--folder", str(out / "pretrain" / RUN), *extra])


def test_dry_run_builds_exact_folder_that_loads_offline_row18(out, capsys):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    assert run_cli(out, "--dry-run") == 0
    upload = out / "publish" / RUN / "upload"
    names = {p.relative_to(upload).as_posix() for p in upload.rglob("*") if p.is_file()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "sentencepiece.model",
        "LICENSE.md",
        "training_config.yaml",
        "training_metrics.jsonl",
        "eval_results.csv",
        "report/index.html",
        "report/loss.png",
    } <= names
    assert not any(n.startswith(".") for n in names)
    # The folder as a user gets it: load it offline, fill a Yoruba mask.
    tok = AutoTokenizer.from_pretrained(upload, local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(upload, local_files_only=True)
    preds = pipeline("fill-mask", model=model, tokenizer=tok)(f"Ẹ kú {tok.mask_token}, ṣé dáadáa ni?", top_k=2)
    assert len(preds) == 2 and preds[0]["sequence"].startswith("Ẹ kú")
    manifest = json.loads((out / "publish" / RUN / "manifest.json").read_text())
    assert set(manifest["outputs"]) == {f"upload/{n}" for n in names}
    printed = capsys.readouterr().out
    assert "dry run" in printed and "fill-mask example" in printed
    # Unchanged inputs: the second dry run is skipped and says so.
    assert run_cli(out, "--dry-run") == 0
    assert "skipped" in capsys.readouterr().out


def test_model_card_metadata_and_results(out):
    assert run_cli(out, "--dry-run", "repo_id=masakhane-lab/tiny-loss") == 0
    upload = out / "publish" / RUN / "upload"
    card = ModelCard.load(upload / "README.md")
    data = card.data.to_dict()
    assert data["language"] == ["amh", "hau", "ibo", "pcm", "swa", "yor"]
    assert data["license"] == "other" and data["license_link"] == "LICENSE.md"
    assert data["pipeline_tag"] == "fill-mask" and "xlm-roberta" in data["tags"]
    results = data["model-index"][0]["results"]
    assert len(results) == 5  # one per (task, language, setting): nothing merged or lost
    ner = [r for r in results if r["dataset"]["type"] == "masakhane/masakhaner2"]
    assert {r["dataset"]["config"] for r in ner} == {"hau", "yor"}
    assert all(r["task"]["type"] == "token-classification" for r in ner)
    yor_ner = next(r for r in ner if r["dataset"]["config"] == "yor")
    assert yor_ner["metrics"][0] == {"type": "f1", "value": 42.3, "name": "f1 (mean of 2 seeds)"}
    yosm = [r for r in results if r["dataset"]["type"] == "yosm"]
    assert {r["dataset"]["config"] for r in yosm} == {"yor", "yor-afrisenti-train-out-of-domain"}
    assert {r["dataset"]["name"] for r in yosm} == {
        "YOSM (Yoruba movie reviews) (yor)",
        "YOSM, trained on AfriSenti yor (yor, out-of-domain)",
    }
    assert all(r["task"]["type"] == "text-classification" for r in yosm)
    assert 'pipeline("fill-mask", model="masakhane-lab/tiny-loss")' in card.text
    assert "non-commercial" in card.text
    licence = (upload / "LICENSE.md").read_text()
    assert "CC BY-NC-SA 4.0" in licence and "CC BY-NC 4.0" in licence


def test_licence_lists_every_source_of_the_real_catalogue(out, data_dir):
    assert run_cli(out, "--dry-run", f"data_dir={data_dir}") == 0
    upload = out / "publish" / RUN / "upload"
    licence = (upload / "LICENSE.md").read_text()
    folders = {
        line.split("\t", 1)[0].split("/", 1)[0]
        for line in (data_dir / "mono" / "SOURCES.tsv").read_text().splitlines()[1:]
        if line
    }
    assert all(f"| {folder} |" in licence for folder in folders)
    assert "| w_afrolm_mlm_al | CC BY-NC-SA 4.0" in licence
    data = ModelCard.load(upload / "README.md").data.to_dict()
    assert "bonadossou/afrolm_active_learning_dataset" in data["datasets"]


def test_per_seed_results_are_averaged_and_bad_tables_name_the_file(tmp_path):
    table = tmp_path / "results.csv"
    table.write_text("task,lang,metric,seed,score\nmasakhaner2,ibo,f1,1,0.50\nmasakhaner2,ibo,f1,2,0.70\n")
    (only,) = read_results(table)
    assert (only.task, only.lang, only.n_seeds) == ("masakhaner2", "ibo", 2)
    assert only.score == pytest.approx(0.60) and only.std == pytest.approx(0.1414, abs=1e-4)
    # The finetune stage's summary.csv: already averaged, `avg` rows left out.
    table.write_text(
        "task,lang,model,metric,seeds,test_mean,test_std\nyosm,yor,m,accuracy,3,70.5,1.2\nyosm,avg,m,accuracy,3,70.5,\n"
    )
    (only,) = read_results(table)
    assert (only.lang, only.score, only.std, only.n_seeds) == ("yor", 70.5, 1.2, 3)
    # Several models in one table: the one whose path names the run is taken.
    table.write_text(
        "task,lang,model,seed,metric,test_score\nyosm,yor,out/pretrain/tiny-loss/final,1,accuracy,70\n"
        "yosm,yor,Davlan/afro-xlmr-base,1,accuracy,80\n"
    )
    (only,) = read_results(table, run_name="tiny-loss")
    assert only.score == 70
    with pytest.raises(ResultsError, match="results of several models"):
        read_results(table, run_name="tiny-afrolm")
    table.write_text("task,lang,score\nyosm,yor,0.5\n")
    with pytest.raises(ResultsError, match=r"results.csv: missing column\(s\) \['metric'\]"):
        read_results(table)
    table.write_text("task,lang,metric,score\nyosm,yor,accuracy,n/a\n")
    with pytest.raises(ResultsError, match=r"results.csv:2: not a number"):
        read_results(table)


@pytest.fixture
def hub_ready(monkeypatch):
    """A (fake) token and the Hub client online, so only the run's own faults can refuse."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_row18")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _refused(out: Path, capsys, *extra: str) -> str:
    """Run a real (not dry) publish against a fake Hub; it must refuse before any request."""
    with FakeHub() as hub:
        rc = run_cli(out, f"endpoint={hub.url}", "repo_id=org/tiny", *extra)
        assert hub.requests() == []
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not (out / "publish" / RUN / "upload").exists()
    return err


def test_refuses_run_without_tokenizer_row18(out, capsys, hub_ready):
    (out / "pretrain" / RUN / "final" / "tokenizer.json").unlink()
    err = _refused(out, capsys)
    assert "no tokenizer" in err and "tokenizer.json" in err


def test_refuses_vocabulary_mismatch_row18(tmp_path, capsys, hub_ready):
    build_tiny_run(tmp_path / "out", RUN, vocab_delta=-7)  # model has 7 rows fewer than the tokenizer
    err = _refused(tmp_path / "out", capsys)
    assert "vocabulary size differs" in err and "tokenizer has" in err


def test_refuses_embedding_rows_not_matching_config_row18(out, capsys, hub_ready):
    config = out / "pretrain" / RUN / "final" / "config.json"
    data = json.loads(config.read_text())
    data["vocab_size"] += 5
    config.write_text(json.dumps(data))
    err = _refused(out, capsys)
    assert f"vocab_size={data['vocab_size']}" in err and "embedding matrix" in err


def test_refuses_without_results_unless_allowed_row18(out, capsys, hub_ready):
    shutil.rmtree(out / "finetune")
    err = _refused(out, capsys)
    assert "no finetune results" in err and "allow_no_results" in err
    assert run_cli(out, "--dry-run", "allow_no_results=true") == 0
    card = ModelCard.load(out / "publish" / RUN / "upload" / "README.md")
    assert "model-index" not in card.data.to_dict()
    assert "No finetuning results" in card.text


def test_refuses_when_the_languages_are_unknown_row18(out, capsys, hub_ready):
    metrics = out / "pretrain" / RUN / "metrics.jsonl"
    metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines() if '"eval"' not in line))
    err = _refused(out, capsys)
    assert "cannot tell the model's languages" in err and "languages=[" in err
    assert run_cli(out, "--dry-run", "languages=[yor, hau]") == 0
    card = ModelCard.load(out / "publish" / RUN / "upload" / "README.md")
    assert card.data.language == ["hau", "yor"]


def test_all_reasons_reported_together_row18(out, capsys, hub_ready):
    (out / "pretrain" / RUN / "final" / "tokenizer_config.json").unlink()
    (out / "finetune" / RUN / "results.csv").write_text("task,lang,metric,score\n")
    err = _refused(out, capsys)
    assert "no tokenizer" in err and "has no rows" in err


def test_help_lists_settings(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("--dry-run", "repo_id", "max_attempts", "backoff_s", "HF_TOKEN"):
        assert word in text


def test_bad_setting_is_a_clear_error(out, capsys):
    assert run_cli(out, "max_attempts=0", "--dry-run") == 2
    assert "max_attempts: must be at least 1" in capsys.readouterr().err
    assert run_cli(out, "repo_id=no-namespace") == 2
    assert "repo_id" in capsys.readouterr().err


def test_upload_names_a_tokenizer_class_transformers_4_knows(out):
    # A run from before the fix: final/ names transformers 5's TokenizersBackend.
    final_config = out / "pretrain" / RUN / "final" / "tokenizer_config.json"
    old = json.loads(final_config.read_text())
    old["tokenizer_class"] = "TokenizersBackend"
    final_config.write_text(json.dumps(old))
    assert run_cli(out, "--dry-run") == 0
    published = json.loads((out / "publish" / RUN / "upload" / "tokenizer_config.json").read_text())
    assert published.pop("tokenizer_class") == "PreTrainedTokenizerFast"
    assert published == {k: v for k, v in old.items() if k != "tokenizer_class"}
    assert json.loads(final_config.read_text()) == old  # the run itself is not touched


def _sentence_without_a_word_guess(folder: Path) -> str:
    """A tiny-text sentence, one word masked, on which the model's top guess is not a word."""
    from transformers import pipeline

    from tests.support.tokenizer import TINY_TEXTS

    fill = pipeline("fill-mask", model=str(folder))
    for text in masked_candidates([t for lines in TINY_TEXTS.values() for t in lines]):
        if ":" not in text and not is_word_piece(fill.tokenizer.convert_ids_to_tokens(fill(text, top_k=1)[0]["token"])):
            return text
    raise AssertionError("the tiny model guesses a word everywhere")


def test_fill_mask_example_of_a_trained_model_is_a_word(trained_out, capsys):
    from transformers import pipeline

    upload = trained_out / "publish" / RUN / "upload"
    manifest = trained_out / "publish" / RUN / "manifest.json"
    sample = _sentence_without_a_word_guess(trained_out / "pretrain" / RUN / "final")
    # Kept as asked (example_candidates=0): the raw top guess is reported as it is, not as a word.
    assert run_cli(trained_out, "--dry-run", f"sample_text={sample}", "example_candidates=0") == 0
    check = json.loads(manifest.read_text())["fill_mask_check"]
    assert (check["text"], check["top_is_word"], check["sentences_tried"]) == (sample, False, 1)
    assert "the top guess is not a word" in capsys.readouterr().out
    # With the run's validation text to choose from, the card shows a sentence whose top guess is a word.
    assert run_cli(trained_out, "--dry-run", f"sample_text={sample}", "repo_id=masakhane-lab/tiny-loss") == 0
    check = json.loads(manifest.read_text())["fill_mask_check"]
    top = check["predictions"][0]["token"]
    assert check["text"] != sample and check["sentences_tried"] > 1
    assert check["top_is_word"] and top.strip() and any(ch.isalpha() for ch in top), check
    assert check["word"] == check["predictions"][0] and check["word_rank"] == 1
    assert f"top guesses {top!r}" in capsys.readouterr().out
    card = ModelCard.load(upload / "README.md")
    assert card.data.to_dict()["widget"] == [{"text": check["text"]}]
    assert f"fill({json.dumps(check['text'], ensure_ascii=False)})" in card.text
    # What a user of the published folder gets for it: the same top guess.
    fill = pipeline("fill-mask", model=str(upload))
    assert fill(check["text"], top_k=1)[0]["token_str"] == top


class FakeFill:
    """A fill-mask pipeline answering from a table: text -> [(piece, score), ...] best first."""

    def __init__(self, table: dict[str, list[tuple[str, float]]]) -> None:
        self.table = table
        self.pieces = sorted({piece for guesses in table.values() for piece, _ in guesses})
        self.tokenizer = self
        self.mask_token = "<mask>"
        self.calls: list[list[str]] = []

    def convert_ids_to_tokens(self, token: int) -> str:
        return self.pieces[token]

    def _guesses(self, text: str, top_k: int) -> list[dict]:
        return [
            {"token": self.pieces.index(piece), "token_str": piece.lstrip("\u2581"), "score": score, "sequence": text}
            for piece, score in self.table[text][:top_k]
        ]

    def __call__(self, texts, top_k: int):
        if isinstance(texts, str):
            return self._guesses(texts, top_k)
        self.calls.append(list(texts))
        out = [self._guesses(t, top_k) for t in texts]
        return out[0] if len(out) == 1 else out  # as the real pipeline does


def guesses(*pieces: str, start: float = 0.5) -> list[tuple[str, float]]:
    return [(piece, start / 2**i) for i, piece in enumerate(pieces)]


def test_choose_example_prefers_sample_then_most_confident_word_and_reports_raw_guesses():
    sample, a, b, c = "S <mask> s.", "A <mask> a.", "B <mask> b.", "C <mask> c."
    table = {
        sample: guesses("\u2581ilé", ".", ",", "\u2581", "s"),
        a: guesses("\u2581ọjà", ".", ",", "\u2581", "s", start=0.9),
        b: guesses("\u2581", ".", ",", "e", "s"),
        c: guesses("\u2581ni", ".", ",", "e", "s", start=0.6),
    }
    # The sample's top guess is a word: kept, although another sentence is more confident.
    example = choose_example(FakeFill(table), sample, [a, b, c])
    assert (example.text, example.top_is_word, example.word["token_str"], example.tried) == (sample, True, "ilé", 4)
    # It is not: the sentence whose top guess is a word with the highest probability.
    table[sample] = guesses("\u2581", ".", ",", "e", "s")
    example = choose_example(FakeFill(table), sample, [b, c, a])
    assert (example.text, example.predictions[0]["token_str"], example.word_rank) == (a, "ọjà", 1)
    # No sentence gives a word: the sample stays, its raw guesses are reported as they are,
    # and the best word further down is named with its rank.
    table[sample] = guesses("\u2581", ".", "\u2581.", "e", "\u2581a", "\u2581ọmọ", "\u2581ilé")
    example = choose_example(FakeFill(table), sample, [b])
    assert example.text == sample and not example.top_is_word
    assert [p["token_str"] for p in example.predictions] == ["", ".", ".", "e", "a"]
    assert (example.word["token_str"], example.word_rank) == ("ọmọ", 6)
    assert "'' 0.500" in example.describe() and "'ọmọ' (rank 6" in example.describe()


def test_word_pieces():
    words = ["\u2581ilé", "\u2581ልጁ", "\u2581n'ụlọ", "\u2581ilé-ìwé", "\u2581Ɗalibai"]
    not_words = ["\u2581", "\u2581.", "\u2581a", "\u25811990", "é", "ilé", "\u2581🙂", "<0xE1>", "\u2581ọ,"]
    assert all(is_word_piece(w) for w in words)
    assert not any(is_word_piece(w) for w in not_words)


def test_sample_text_needs_exactly_one_mask():
    with pytest.raises(ConfigError, match="exactly once"):
        PublishConfig(sample_text="<mask> <mask>")
    with pytest.raises(ConfigError, match="example_candidates"):
        PublishConfig(example_candidates=-1)
