"""The selection study's runner: equal budgets across strategies, validation text
never selectable, complete runs skipped, shards, and the analysis arithmetic."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError, config_to_dict
from pretrain import study, study_analysis
from pretrain.config import flatten
from tests.support.pretrain import WORDS

LANGS = ("amh", "hau", "yor")
MARKER = "zzvalidonly"  # a word only validation text contains

# A run small enough for tests (every strategy gets these; the study sets strategy and seeds).
TINY = [
    "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.ffn_size=64",
    "data.block_len=32", "eval.targets_per_lang=200",
    "train.max_steps=8", "train.batch_size=4", "train.warmup_steps=2", "train.eval_every=4",
    "train.log_every=4", "train.checkpoint_every=4", "selection.select_every=4",
    "selection.blocks_per_round=16", "selection.candidates_per_round=32",
    "selection.afrolm_prompts_per_round=6", "selection.afrolm_generated_share=0.5",  # a round keeps ~5 blocks a language
]


def _sentences(lang: str, n: int, seed: int, marker: str = "") -> list[str]:
    rng = random.Random(f"{lang}-{seed}")
    words = WORDS[lang]
    return [" ".join([*(rng.choice(words) for _ in range(rng.randint(5, 12))), marker]).strip() + "."
            for _ in range(n)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Corpus whose validation lines all carry MARKER (so leaks are visible), and its tokenizer."""
    from tests.support.tokenizer import build_tiny_tokenizer, write_corpus

    root = tmp_path_factory.mktemp("study-inputs")
    train = {lang: _sentences(lang, 150, 0) for lang in LANGS}
    valid = {lang: _sentences(lang, 15, 1, MARKER) for lang in LANGS}
    corpus_dir = write_corpus(root / "corpus", train, valid)
    tok = build_tiny_tokenizer(root / "tokenizer", {k: train[k] + valid[k] for k in LANGS}, vocab_size=400)
    return corpus_dir, tok, train, valid


def _cfg(inputs, out: Path, **kw) -> study.StudyConfig:
    corpus_dir, tok, _, _ = inputs
    settings = dict(corpus_dir=corpus_dir, tokenizer_dir=tok, out_dir=out, data_dir=out / "no-data",
                    langs=["amh", "hau", "yor", "swa"], preset="study", overrides=list(TINY),
                    finetune=False, seeds=[1, 2])
    settings.update(kw)
    return study.StudyConfig(**settings)


def test_equal_budgets_configs_differ_only_in_strategy_and_seed(inputs, tmp_path):
    for cuda in (False, True):  # the CPU preset and the GPU preset alike
        cfg = _cfg(inputs, tmp_path, overrides=[], seeds=[1, 2, 3])
        specs = study.plan(cfg, study.study_langs(cfg, log=lambda *_: None), cuda=cuda)
        n_runs = 3 * len(study.STRATEGIES)
        assert len(specs) == n_runs and len({s.out_dir for s in specs}) == n_runs
        flat = [flatten(config_to_dict(study.pretrain_config(s))) for s in specs]
        for spec, settings in zip(specs, flat):
            differing = {k for k in settings if settings[k] != flat[0][k]}
            assert differing <= study.PER_RUN_SETTINGS, (spec.name, differing)
            assert settings["selection.strategy"] == spec.strategy
            assert settings["selection.seed"] == settings["train.seed"] == spec.seed
            assert settings["data.langs"] == ["amh", "hau", "yor"]  # swa is not in this corpus
        # equal training tokens and equal scoring budget, stated as the numbers themselves
        budget = {(f["train.max_steps"] * f["train.batch_size"] * f["train.grad_accum"] * f["data.block_len"],
                   f["selection.candidates_per_round"], f["selection.select_every"]) for f in flat}
        assert len(budget) == 1
        assert {f["selection.strategy"] for f in flat} == set(study.STRATEGIES)


def test_overrides_cannot_change_one_strategy_or_the_seed(inputs, tmp_path):
    with pytest.raises(ConfigError, match="selection.strategy"):
        _cfg(inputs, tmp_path, overrides=["selection.strategy=loss"])
    with pytest.raises(ConfigError, match="train.seed"):
        _cfg(inputs, tmp_path, overrides=["train.seed=3"])
    with pytest.raises(ConfigError, match="control"):
        _cfg(inputs, tmp_path, strategies=["loss"])
    with pytest.raises(ConfigError, match="shard"):
        _cfg(inputs, tmp_path, shard="2/2")


def test_validation_is_never_selectable_and_prompts_are_training_lines(inputs, tmp_path, monkeypatch):
    """The pool holds no validation block or text; afrolm's prompts are training lines only."""
    from pretrain import data, train

    corpus_dir, tok, train_texts, valid_texts = inputs
    cfg = _cfg(inputs, tmp_path, strategies=["random", "afrolm"], seeds=[1])
    spec = next(s for s in study.plan(cfg, list(LANGS), cuda=False) if s.strategy == "afrolm")
    prompts = []
    original = data.PackedBlockPool.sample_sentences

    def recording(self, lang, n, rng):
        got = original(self, lang, n, rng)
        prompts.extend((lang, t) for t in got)
        return got

    monkeypatch.setattr(data.PackedBlockPool, "sample_sentences", recording)
    result = train.run(study.pretrain_config(spec))
    assert result.final_dir is not None and study.pretrain_is_complete(spec)

    assert prompts, "afrolm asked for no prompts"
    for lang, text in prompts:
        assert text in train_texts[lang] and MARKER not in text
    # the report's examples of what afrolm generated come from the same run, and hold no validation text
    run = study_analysis.load_run(spec.out_dir)
    kept = sum((s.get("afrolm") or {}).get("blocks", 0) for s in run.rounds)
    examples = study_analysis.block_examples(run, 1)
    assert (len(examples) > 0) == (kept > 0)
    assert all(MARKER not in e["text"] and e["lang"] in LANGS for e in examples)
    # every block the pool can serve (the corpus train blocks) against every validation block
    cache = next(p for p in (tmp_path / "cache").iterdir() if (p / data.INDEX_NAME).exists())
    pool = data.PackedBlockPool(cache, LANGS, None, corpus_dir)
    from tokenizers import Tokenizer

    decoder = Tokenizer.from_file(str(tok / "tokenizer.json"))
    pool_rows = {row.tobytes() for row in pool.blocks(np.arange(len(pool)))}
    for lang in LANGS:
        valid = data.load_valid_blocks(cache, lang)
        assert len(valid) and not any(row.tobytes() in pool_rows for row in valid)
    assert all(MARKER not in decoder.decode(row.tolist()) for row in pool.blocks(np.arange(len(pool))))
    # the chosen blocks of every round are pool blocks (base or generated), never validation
    for path in sorted((spec.out_dir / "selection").glob("round-*.jsonl")):
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        assert all(0 <= c["block_id"] < len(pool) or c["generated"] for c in lines if c.get("type") == "candidate")


def test_runner_skips_complete_runs_resumes_missing_and_shards(inputs, tmp_path):
    logs = []
    cfg = _cfg(inputs, tmp_path, strategies=["random", "loss"], seeds=[1])
    assert study.run(cfg, log=logs.append) == 0
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["loss-seed1", "random-seed1"]
    manifests = {p.name: (p / "manifest.json").read_bytes() for p in runs.iterdir()}
    rows = (tmp_path / "study.csv").read_text(encoding="utf-8")
    assert "final_valid_loss" in rows and (tmp_path / "curves.csv").exists()

    logs.clear()
    assert study.run(cfg, log=logs.append) == 0  # everything complete: nothing retrained
    assert sum("pretraining complete, skipped" in x for x in logs) == 2
    assert not any("pretraining (log" in x for x in logs)
    assert {p.name: (p / "manifest.json").read_bytes() for p in runs.iterdir()} == manifests

    (runs / "loss-seed1" / "manifest.json").unlink()  # an unfinished run: only it runs again
    logs.clear()
    assert study.run(study.StudyConfig(**{**vars_of(cfg), "shard": "1/2"}), log=logs.append) == 0
    assert any("loss-seed1: pretraining (log" in x for x in logs)
    assert not any("random-seed1" in x for x in logs if x.startswith("[study] run"))
    assert (runs / "loss-seed1" / "manifest.json").exists()


def vars_of(cfg: study.StudyConfig) -> dict:
    return {f: getattr(cfg, f) for f in study.StudyConfig.__dataclass_fields__}


def test_finetune_record_is_tied_to_model_and_arguments(inputs, tmp_path):
    from common.io import write_json, write_manifest

    cfg = _cfg(inputs, tmp_path, strategies=["random"], seeds=[1], finetune=True)
    spec = study.plan(cfg, list(LANGS), cuda=False)[0]
    (spec.out_dir / "final").mkdir(parents=True)
    weights = spec.out_dir / "final" / "model.safetensors"
    weights.write_bytes(b"one")
    write_manifest(spec.out_dir, "pretrain", {}, {}, [weights])
    assert not study.finetune_is_complete(spec)
    (spec.out_dir / "finetune").mkdir()
    (spec.out_dir / "finetune" / "results.csv").write_text("task\n")
    write_json(spec.out_dir / "finetune" / study.FINETUNE_RECORD, {"key": study.finetune_key(spec)})
    assert study.finetune_is_complete(spec)
    weights.write_bytes(b"two")  # retrained model: the old scores no longer count
    write_manifest(spec.out_dir, "pretrain", {}, {}, [weights])
    assert not study.finetune_is_complete(spec)


def test_tokens_to_reach_interpolates_and_reports_not_reached():
    tokens = np.array([0, 100, 200, 300])
    assert study_analysis.tokens_to_reach(tokens, np.array([9.0, 7.0, 6.0, 5.0]), 6.5) == pytest.approx(150.0)
    assert study_analysis.tokens_to_reach(tokens, np.array([9.0, 7.0, 6.0, 5.0]), 5.0) == pytest.approx(300.0)
    assert study_analysis.tokens_to_reach(tokens, np.array([9.0, 8.0, 7.5, 7.0]), 6.0) is None


def test_compare_says_which_differences_exceed_the_seed_spread():
    control = [5.0, 5.2, 5.1]
    clear = study_analysis.compare([4.0, 4.1, 4.2], control, lower_is_better=True)
    assert clear["exceeds_spread"] and clear["verdict"] == "better (exceeds spread)"
    assert clear["seeds_better"] == "3/3" and clear["diff"] == pytest.approx(-1.0)
    noisy = study_analysis.compare([4.9, 5.4, 5.15], control, lower_is_better=True)
    assert not noisy["exceeds_spread"] and noisy["verdict"].endswith("(within spread)")
    worse = study_analysis.compare([60.0, 61.0, 62.0], [70.0, 70.5, 71.0], lower_is_better=False)
    assert worse["verdict"] == "worse (exceeds spread)" and worse["seeds_better"] == "0/3"


def test_help_lists_the_study_settings(capsys):
    with pytest.raises(SystemExit):
        study.parse_args(["--help"])
    text = capsys.readouterr().out
    for name in ("strategies", "seeds", "shard", "finetune_tasks", "preset"):
        assert name in text
