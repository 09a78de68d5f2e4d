"""The selection study's runner and analysis: equal budgets across strategies, validation text
never selectable, complete runs skipped, shards, the compute-parity arm, the verdict rules on
synthetic paired numbers, the analysis of hand-written run folders, and the command line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError, config_to_dict
from pretrain.config import flatten
from study import analysis as study_analysis
from study import run as study
from tests.support.pretrain import WORDS

LANGS = ("amh", "hau", "yor")
MARKER = "zzvalidonly"  # a word only validation text contains

# A run small enough for tests (every strategy gets these; the study sets strategy and seeds).
TINY = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.ffn_size=64",
    "data.block_len=32",
    "eval.targets_per_lang=200",
    "train.max_steps=8",
    "train.batch_size=4",
    "train.warmup_steps=2",
    "train.eval_every=4",
    "train.log_every=4",
    "train.checkpoint_every=4",
    "selection.select_every=4",
    "selection.blocks_per_round=16",
    "selection.candidates_per_round=32",
    "selection.afrolm_prompts_per_round=6",
    "selection.afrolm_generated_share=0.5",  # a round keeps ~5 blocks a language
]


def _sentences(lang: str, n: int, seed: int, marker: str = "") -> list[str]:
    rng = random.Random(f"{lang}-{seed}")
    words = WORDS[lang]
    return [" ".join([*(rng.choice(words) for _ in range(rng.randint(5, 12))), marker]).strip() + "." for _ in range(n)]


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
    settings = dict(
        corpus_dir=corpus_dir,
        tokenizer_dir=tok,
        out_dir=out,
        data_dir=out / "no-data",
        langs=["amh", "hau", "yor", "swa"],
        preset="study",
        overrides=list(TINY),
        finetune=False,
        seeds=[1, 2],
        parity_from="",
        noise_share=0.0,
    )
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
        budget = {
            (
                f["train.max_steps"] * f["train.batch_size"] * f["train.grad_accum"] * f["data.block_len"],
                f["selection.candidates_per_round"],
                f["selection.select_every"],
            )
            for f in flat
        }
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


def test_block_examples_decode_the_noise_blocks_of_a_positive_control_run(inputs, tmp_path):
    """A run with `data.noise_share`: its round files name noise block ids (after the train blocks),
    and the examples decode them from a pool rebuilt with the run's noise share."""
    from tokenizers import Tokenizer

    from pretrain import data
    from pretrain.runfiles import write_round
    from tokenizer import load_tokenizer

    corpus_dir, tok, _, _ = inputs
    cache = data.build_block_cache(corpus_dir, load_tokenizer(tok), tok, 32, tmp_path / "cache", log=lambda *_: None)
    pool = data.PackedBlockPool(cache, LANGS, None, corpus_dir, noise_share=0.33)
    noisy, clean = int(pool.noise_ids("hau")[0]), int(pool.ids("hau")[0])
    assert noisy >= pool.n_real > clean
    folder = tmp_path / "runs-noise" / "loss-seed1"
    (folder / "final").mkdir(parents=True)
    (folder / "final" / "tokenizer.json").write_bytes((tok / "tokenizer.json").read_bytes())
    (folder / "config.yaml").write_text(
        json.dumps(
            {
                "corpus_dir": str(corpus_dir),
                "tokenizer_dir": str(tok),
                "data": {"cache_dir": str(tmp_path / "cache"), "block_len": 32, "noise_share": 0.33},
            }
        )
    )
    summary = {"type": "summary", "round": 0, "mode": "scored", "languages": {lang: {} for lang in LANGS}}
    write_round(
        folder / "selection" / "round-000.jsonl",
        [
            {
                "type": "candidate",
                "round": 0,
                "block_id": noisy,
                "lang": "hau",
                "score": 2.0,
                "chosen": False,
                "noise": "shuffled",
                "generated": False,
                "junk": None,
            },
            {
                "type": "candidate",
                "round": 0,
                "block_id": clean,
                "lang": "hau",
                "score": 1.0,
                "chosen": True,
                "noise": None,
                "generated": False,
                "junk": None,
            },
        ],
        summary,
    )
    run = study_analysis.RunData(folder.name, "loss", 1, folder, "noise", rounds=[summary])
    highest, lowest = study_analysis.block_examples(run, 1, width=10_000)
    decoder = Tokenizer.from_file(str(tok / "tokenizer.json"))
    for example, block_id in ((highest, noisy), (lowest, clean)):
        expected = decoder.decode(pool.blocks([block_id])[0].tolist(), skip_special_tokens=True)
        assert example["text"] == expected.replace("\n", " ") and example["lang"] == "hau"


@pytest.mark.slow  # four tiny pretraining runs in subprocesses, about a minute on 2 cores
def test_runner_skips_complete_runs_resumes_missing_shards_and_adds_the_parity_arm(inputs, tmp_path):
    logs = []
    cfg = _cfg(inputs, tmp_path, strategies=["random", "loss"], seeds=[1], parity_from="loss", parity_steps=2)
    assert study.run(cfg, log=logs.append) == 0
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["loss-seed1", "random+parity-seed1", "random-seed1"]
    # the parity arm runs after the others, with the control's selection and 2 more steps
    assert [x for x in logs if x.startswith("[study] run ")][-1] == "[study] run 1/1: random+parity-seed1"
    parity = json.loads((runs / "random+parity-seed1" / "manifest.json").read_text(encoding="utf-8"))
    assert parity["summary"]["steps"] == 8 + 2
    manifests = {p.name: (p / "manifest.json").read_bytes() for p in runs.iterdir()}
    result = json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8"))
    assert [r["strategy"] for r in result["verdicts"]] == ["loss"] and result["parity"]["rows"]
    assert (tmp_path / "analysis.md").exists() and (tmp_path / "curves.csv").exists()
    assert len((tmp_path / "results.csv").read_text(encoding="utf-8").splitlines()) == 1 + 3

    logs.clear()
    assert study.run(cfg, log=logs.append) == 0  # everything complete: nothing retrained
    assert sum("pretraining complete, skipped" in x for x in logs) == 3
    assert not any("pretraining (log" in x for x in logs)
    assert {p.name: (p / "manifest.json").read_bytes() for p in runs.iterdir()} == manifests

    (runs / "loss-seed1" / "manifest.json").unlink()  # an unfinished run: only it runs again
    logs.clear()
    assert study.run(study.StudyConfig(**{**vars_of(cfg), "shard": "1/2", "parity_from": ""}), log=logs.append) == 0
    assert any("loss-seed1: pretraining (log" in x for x in logs)
    assert not any("random-seed1" in x for x in logs if x.startswith("[study] run"))
    assert (runs / "loss-seed1" / "manifest.json").exists()


def vars_of(cfg: study.StudyConfig) -> dict:
    return {f: getattr(cfg, f) for f in study.StudyConfig.__dataclass_fields__}


def test_runs_go_job_count_at_a_time_and_failures_are_named(inputs, tmp_path, monkeypatch):
    import threading
    import time

    cfg = _cfg(inputs, tmp_path, strategies=["random", "loss"], seeds=[1, 2, 3], jobs=2)
    running, most, lock = [0], [0], threading.Lock()

    def fake_execute(spec, cfg, log):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return spec.name != "loss-seed2"

    monkeypatch.setattr(study, "execute", fake_execute)
    specs = study.plan(cfg, list(LANGS), cuda=False)
    logs = []
    assert study._execute_all(specs, cfg, "main grid", logs.append) == ["loss-seed2"]
    assert most[0] == 2 and "6 runs; this shard (0/1) runs 6, 2 at a time" in logs[0]
    monkeypatch.setattr(study.os, "cpu_count", lambda: 16)
    assert study.job_count(study.StudyConfig(**{**vars_of(cfg), "jobs": 0}), cuda=False) == 16  # a core a run
    assert study.job_count(study.StudyConfig(**{**vars_of(cfg), "jobs": 0, "preset": "auto"}), cuda=True) == 1


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


def test_parity_arm_and_positive_control_grid_are_planned_apart(inputs, tmp_path):
    cfg = _cfg(
        inputs,
        tmp_path,
        overrides=[],
        seeds=[1, 2],
        strategies=["random", "loss"],
        parity_from="loss",
        noise_share=0.25,
        noise_overrides=["masking.probability=0.2"],
    )
    langs = study.study_langs(cfg, log=lambda *_: None)
    specs = study.plan(cfg, langs, cuda=False)
    noise = [s for s in specs if s.grid == "noise"]
    assert [s.name for s in noise] == [f"{arm}-seed{k}" for arm in ("random", "loss") for k in (1, 2, 3)]
    assert all(s.out_dir.parent == tmp_path / "runs-noise" and not s.finetune_args for s in noise)  # not finetuned
    assert {study.pretrain_config(s).data.noise_share for s in noise} == {0.25}
    assert {study.pretrain_config(s).masking.probability for s in noise} == {0.2}
    main = [s for s in specs if s.grid == "main"]
    assert len(main) == 4 and {study.pretrain_config(s).data.noise_share for s in main} == {0.0}
    with pytest.raises(ConfigError, match="data.noise_share"):
        _cfg(inputs, tmp_path, overrides=["data.noise_share=0.3"])  # noise in every arm: not the main grid
    base = study.pretrain_config(specs[0])
    parity = study.plan_parity(cfg, langs, extra_steps=5, cuda=False)
    assert [(s.arm, s.strategy, s.seed) for s in parity] == [
        ("random+parity", "random", 1),
        ("random+parity", "random", 2),
    ]
    flat = flatten(config_to_dict(study.pretrain_config(parity[0])))
    ref = flatten(config_to_dict(base))
    assert {k for k in flat if flat[k] != ref[k]} <= study.PER_RUN_SETTINGS | {"train.max_steps"}
    assert flat["train.max_steps"] == base.train.max_steps + 5


def test_parity_steps_are_measured_from_the_scoring_arms_timing(tmp_path):
    cfg = study.StudyConfig(out_dir=tmp_path, strategies=["random", "loss"], seeds=[1, 2])
    assert study.measure_parity_steps(cfg) is None  # no loss run yet
    for seed, (elapsed, scoring) in zip((1, 2), ((130.0, 30.0), (150.0, 50.0))):
        folder = tmp_path / "runs" / f"loss-seed{seed}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"summary": {"steps": 100}}))
        (folder / "timing.jsonl").write_text(
            json.dumps({"step": 50, "elapsed_s": 1.0, "scoring_s": 0.5})
            + "\n"
            + json.dumps({"step": 100, "elapsed_s": elapsed, "scoring_s": scoring})
            + "\n"
        )
        if seed == 1:
            assert study.measure_parity_steps(cfg) is None  # seed 2 not there yet
    got = study.measure_parity_steps(cfg)
    # 40 s of scoring on average, (100 + 100) / 2 / 100 = 1 s a training step -> 40 more steps
    assert got["extra_steps"] == 40 and got["seconds_per_step"] == pytest.approx(1.0)
    fixed = study.StudyConfig(out_dir=tmp_path / "none", strategies=["random", "loss"], parity_steps=7)
    assert study.measure_parity_steps(fixed)["extra_steps"] == 7
    with pytest.raises(ConfigError, match="parity_from"):
        study.StudyConfig(strategies=["random", "entropy"])  # the default parity_from=loss is not an arm
    assert study.StudyConfig(strategies=["random", "entropy"], parity_from="").parity_arm is None


# ---------------------------------------------------------------- the verdict rules on synthetic numbers

BETTER = [-0.052, -0.047, -0.061, -0.044, -0.055, -0.049, -0.058, -0.043]
SAME = [0.003, -0.002, 0.001, -0.003, 0.002, 0.000, -0.001, 0.002]
WORSE = [0.041, 0.052, 0.038, 0.047, 0.060, 0.044, 0.049, 0.055]
NOISY = [-0.09, 0.06, -0.12, 0.08, -0.03, 0.10, -0.07, 0.02]


def _verdicts(diffs, **kw):
    return {r["strategy"]: r["verdict"] for r in study_analysis.compare_arms(diffs, **kw)}


def test_verdicts_confirmed_refuted_inconclusive():
    got = _verdicts({"loss": BETTER, "entropy": SAME, "afrolm": WORSE, "rho": NOISY})
    assert got == {
        "loss": "confirmed",
        "entropy": "refuted at this scale (equivalent within ±sesoi)",
        "afrolm": "refuted at this scale (worse)",
        "rho": "inconclusive",
    }
    # a real but tiny gain, also inside ±sesoi: confirmed, and marked as smaller than sesoi
    tiny = [d / 10 for d in BETTER]
    assert _verdicts({"loss": tiny})["loss"] == "confirmed (gain smaller than sesoi)"
    assert _verdicts({"loss": tiny}, sesoi=0.001)["loss"] == "confirmed"


def test_verdict_needs_both_tests_after_holm():
    # 7 of 8 seeds better (the worse one smallest): t-test clear, sign-flip p = 4/256 alone ...
    seven = [-0.052, -0.047, -0.061, -0.044, -0.055, -0.049, -0.058, 0.003]
    rows = {r["strategy"]: r for r in study_analysis.compare_arms({"loss": seven})}
    assert rows["loss"]["p_sign_flip"] == pytest.approx(4 / 256) and rows["loss"]["verdict"] == "confirmed"
    # ... but with four more arms Holm multiplies it past 0.05: not confirmed
    rows = {
        r["strategy"]: r
        for r in study_analysis.compare_arms(
            {"loss": seven, "entropy": NOISY, "afrolm": NOISY, "rho": NOISY, "mix": NOISY}
        )
    }
    assert rows["loss"]["p_t_holm"] < 0.05 and rows["loss"]["p_sign_flip_holm"] == pytest.approx(5 * 4 / 256)
    assert rows["loss"]["verdict"] == "inconclusive"
    # every seed better: 2/256 x 5 < 0.05 still confirms
    rows = {
        r["strategy"]: r
        for r in study_analysis.compare_arms(
            {"loss": BETTER, "entropy": NOISY, "afrolm": NOISY, "rho": NOISY, "mix": NOISY}
        )
    }
    assert rows["loss"]["verdict"] == "confirmed" and rows["loss"]["mde"] > 0
    # three seeds can never confirm: the sign-flip test cannot go below 2/8
    assert _verdicts({"loss": BETTER[:3]})["loss"] == "inconclusive"


def test_gate_not_met_makes_every_verdict_inconclusive():
    final = {"amh": 6.0, "hau": 6.5}
    assert study_analysis.gate_failures(final, {"amh": 6.5, "hau": 7.0}, 0.3) == []
    failures = study_analysis.gate_failures(final, {"amh": 6.5, "hau": 6.6}, 0.3)
    assert failures == ["hau +0.100 < 0.3"]
    assert study_analysis.gate_failures(final, {"amh": 6.5}, 0.3) == ["hau: no unigram baseline"]
    got = _verdicts({"loss": BETTER, "entropy": SAME}, gate=failures)
    assert got == {
        "loss": "inconclusive (gate not met: hau +0.100 < 0.3)",
        "entropy": "inconclusive (gate not met: hau +0.100 < 0.3)",
    }


# ---------------------------------------------------------------- the analysis of hand-written run folders

FAKE_LANGS = ("hau", "yor")


def _fake_run(
    folder: Path,
    seed: int,
    final: float,
    *,
    steps: int = 100,
    every: int = 20,
    slope: float = 0.0,
    unigram: float = 7.0,
    schedule: str = "wsd",
    noise: list[float] | None = None,
) -> None:
    """A complete run folder: manifest, config.yaml, metrics.jsonl (baseline, eval every `every`
    steps with the language mean ending at `final`, selection rounds), timing.jsonl."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"summary": {"steps": steps, "tokens": steps * 64, "parameters": 1000}})
    )
    (folder / "config.yaml").write_text(
        f"train: {{schedule: {schedule}, decay_fraction: 0.2, max_steps: {steps}, warmup_steps: 10}}\n"
    )
    events = [
        {
            "event": "baseline",
            "step": 0,
            "kind": "unigram",
            "langs": {lang: {"loss": unigram, "bpc": 1.0} for lang in FAKE_LANGS},
        }
    ]
    for step in sorted({*range(0, steps + 1, every), steps}):
        # 9 nats at step 0, down to `final` at the end; `slope` bends the middle (a faster start when > 0)
        x = step / steps
        mean = 9.0 + (final - 9.0) * min(1.0, x * (1 + slope))
        events.append(
            {"event": "eval", "step": step, "langs": {"hau": {"loss": mean - 0.1}, "yor": {"loss": mean + 0.1}}}
        )
    for rnd in range(2):  # two selection rounds
        summary = {
            "round": rnd,
            "mode": "scored",
            "chosen": 10,
            "languages": {
                lang: {"chosen": 5, "mean_score_candidates": 1.0, "mean_score_chosen": 1.2} for lang in FAKE_LANGS
            },
        }
        if noise is not None:
            summary["noise_share"] = noise[rnd]
        events.append({"event": "selection", "round": rnd, "step": rnd * steps // 2, "summary": summary})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "timing.jsonl").write_text(json.dumps({"step": steps, "elapsed_s": 10.0, "scoring_s": 1.0}) + "\n")


def _fake_study(root: Path, unigram: float = 7.0) -> study.StudyConfig:
    control = [6.50, 6.52, 6.48, 6.51, 6.49, 6.53, 6.47, 6.50]
    for seed, c in enumerate(control, 1):
        _fake_run(root / "runs" / f"random-seed{seed}", seed, c, unigram=unigram)
        _fake_run(root / "runs" / f"loss-seed{seed}", seed, c + BETTER[seed - 1], slope=0.5, unigram=unigram)
        _fake_run(root / "runs" / f"entropy-seed{seed}", seed, c + SAME[seed - 1], unigram=unigram)
        _fake_run(root / "runs" / f"random+parity-seed{seed}", seed, c - 0.01, steps=110, unigram=unigram)
    for seed in (1, 2, 3):
        _fake_run(root / "runs-noise" / f"random-seed{seed}", seed, 6.6, noise=[0.33, 0.34])
        _fake_run(root / "runs-noise" / f"loss-seed{seed}", seed, 6.5, noise=[0.33, 0.05 * seed])
    (root / "runs" / "notes").mkdir()  # not a run: ignored
    (root / "parity.json").write_text(json.dumps({"extra_steps": 10, "source": "parity_steps setting"}))
    return study.StudyConfig(out_dir=root, strategies=["random", "loss", "entropy"], examples=0)


def test_analysis_of_hand_written_runs(tmp_path):
    cfg = _fake_study(tmp_path)
    logs = []
    result = study_analysis.analyse(cfg, log=logs.append)
    assert result["langs"] == list(FAKE_LANGS) and result["gate"]["met"]
    assert result["gate"]["margins"] == {"hau": pytest.approx(0.6), "yor": pytest.approx(0.4)}
    rows = {r["strategy"]: r for r in result["verdicts"]}
    assert set(rows) == {"loss", "entropy"}  # the parity arm is not in the verdict family
    assert rows["loss"]["verdict"] == "confirmed" and rows["loss"]["mean_diff"] == pytest.approx(np.mean(BETTER))
    assert rows["entropy"]["verdict"] == "refuted at this scale (equivalent within ±sesoi)"
    assert rows["loss"]["p_sign_flip"] == pytest.approx(2 / 256)
    # per-step table: every common evaluation step, phase from the wsd schedule (decay after step 80)
    steps = result["steps"]["loss"]
    assert [r["step"] for r in steps] == [0, 20, 40, 60, 80, 100]
    assert [r["phase"] for r in steps] == ["before decay"] * 5 + ["decay"]
    assert steps[0]["mean_diff"] == pytest.approx(0.0, abs=1e-12) and steps[2]["mean_diff"] < 0
    # tokens to target: the same-seed control's loss at step 80 (the last evaluation before the decay);
    # loss's curve runs 1.5 times as fast, so it is there by step 60 (at 40 not yet)
    target = result["tokens_to_target"]["loss"]
    assert target["target_step"] == 80 and target["target_tokens"] == 80 * 64
    assert target["reached_steps"] == [60] * 8 and target["mean_ratio"] == pytest.approx(0.75)
    # entropy's curve has the control's shape: there at 80 where its final loss is not above the control's
    assert result["tokens_to_target"]["entropy"]["reached"] == "4/8"
    # the parity arm: described against the control and against each strategy, no verdict
    assert [r["comparison"] for r in result["parity"]["rows"]] == [
        "random+parity − random",
        "loss − random+parity",
        "entropy − random+parity",
    ]
    assert result["parity"]["rows"][0]["mean_diff"] == pytest.approx(-0.01)
    # the positive-control grid: noise share per arm and round
    noise = {(r["arm"], r["round"]): r for r in result["noise"]["rounds"]}
    assert noise[("loss", 1)]["noise_share"] == pytest.approx(0.1) and noise[("random", 1)]["noise_share"] == 0.34
    # the files
    results = (tmp_path / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(results) == 1 + 4 * 8 + 2 * 3 and results[0].startswith("grid,run,arm,seed,steps,tokens")
    saved = json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8"))
    assert saved["verdicts"][0]["verdict"] == "confirmed" and saved["gate"]["met"] is True
    text = (tmp_path / "analysis.md").read_text(encoding="utf-8")
    assert "**Gate met**" in text and "| loss | 8 | -0.0511 |" in text and "random+parity" in text
    assert "Share of chosen blocks that were noise" in text
    assert {p.name for p in (tmp_path / "figures").iterdir()} >= {"paired_differences.png", "loss_vs_tokens.png"}
    assert any("loss: confirmed" in x for x in logs)


def test_analysis_gate_not_met_and_no_wsd(tmp_path):
    cfg = _fake_study(tmp_path, unigram=6.75)  # the control ends 0.35 below in hau, 0.15 in yor
    result = study_analysis.compute(cfg, study_analysis.load_runs(tmp_path / "runs"))
    assert result["gate"]["failures"] == ["yor +0.150 < 0.3"] and not result["gate"]["met"]
    assert {r["verdict"] for r in result["verdicts"]} == {"inconclusive (gate not met: yor +0.150 < 0.3)"}
    assert "**Gate not met**" in study_analysis.markdown(result)
    # another schedule: per-step differences still, tokens to target not computed
    other = tmp_path / "linear"
    for seed in (1, 2):
        _fake_run(other / "runs" / f"random-seed{seed}", seed, 6.5, schedule="linear")
        _fake_run(other / "runs" / f"loss-seed{seed}", seed, 6.4, schedule="linear")
    cfg = study.StudyConfig(out_dir=other, strategies=["random", "loss"], examples=0)
    result = study_analysis.compute(cfg, study_analysis.load_runs(other / "runs"))
    assert result["tokens_to_target"]["loss"]["target_step"] is None
    assert {r["phase"] for r in result["steps"]["loss"]} == {"–"}
    assert "Not computed: schedule is not wsd" in study_analysis.markdown(result)
    # no control run: nothing to compare
    assert study_analysis.compute(cfg, [r for r in study_analysis.load_runs(other / "runs") if r.arm == "loss"]) is None


def test_command_line(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for module in ("study", "study.run"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=root, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: python -m study")
        for name in (
            "strategies",
            "seeds",
            "shard",
            "sesoi",
            "gate_margin",
            "parity_from",
            "noise_share",
            "finetune_tasks",
        ):
            assert name in done.stdout
    assert study.main(["seeds=[1,1]"]) == 2  # a bad setting: one error line, exit 2
    assert study.main([f"out_dir={tmp_path}", "analyse_only=true"]) == 0  # nothing on disk yet: says so
