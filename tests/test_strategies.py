"""pretrain/strategies/: the registry, each strategy's scoring on a tiny model, the shared frame
(same candidates, same junk guard for every arm), fixed scoring masks, and the start-of-run
check of selection pressure. Fixtures and the in-memory pool come from test_selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import ConfigError
from pretrain import generate, irreducible, strategies
from pretrain.scoring import block_mask, masked_scores, special_token_ids
from pretrain.selection import (
    SelectionConfig,
    SelectionState,
    check_pressure,
    choose_in_language,
    mask_seed,
    run_round,
)
from pretrain.strategies import STRATEGIES, mix
from tests.support.selection import (  # noqa: F401  (fixtures: one_thread, tokenizer, trained)
    cfg_for,
    make_pool,
    one_thread,
    plant_junk,
    read_round,
    tiny_model,
    tokenizer,
    trained,
)

STRATEGY_DIR = Path(strategies.__file__).parent


# ------------------------------------------------------------------ registry


def test_registry_is_one_module_per_strategy_and_what_help_and_study_list(capsys):
    modules = {p.stem for p in STRATEGY_DIR.glob("*.py")} - {"__init__", "base"}
    assert len(modules) == len(STRATEGIES)  # one file per strategy, nothing unregistered
    assert list(STRATEGIES) == ["random", "loss", "rho", "entropy", "afrolm", "mix"]
    from pretrain import train
    from study import run as study

    assert study.STRATEGIES == tuple(STRATEGIES)
    assert study.StudyConfig().strategies == list(STRATEGIES)
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    line = next(l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("selection.strategy "))
    listed = [part.split(" = ")[0].strip() for part in line.split("):", 1)[1].split(";")]
    assert listed[0].split()[-1] == "random" and [p.split()[-1] for p in listed] == list(STRATEGIES)
    assert " reducible " not in line


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"selection.strategy = 'reducible': unknown strategy; known: "
        r"random, loss, rho, entropy, afrolm, mix",
    ):
        SelectionConfig(strategy="reducible")
    with pytest.raises(ValueError, match="unknown strategy"):
        strategies.get("hardest")
    with pytest.raises(ValueError, match="selection.holdout_share.*rho"):
        SelectionConfig(strategy="rho", holdout_share=0.0)


# ------------------------------------------------------------------ the shared frame


def candidates_of(path: Path) -> set[int]:
    records, _ = read_round(path)
    return {r["block_id"] for r in records if not r["generated"]}


def test_every_strategy_draws_the_same_candidates_and_holds_out_the_same_blocks(tokenizer, trained, tmp_path):
    _, model = trained
    seen = {}
    for name in STRATEGIES:
        pool, state = make_pool(tokenizer), SelectionState()
        for r in range(3):
            run_round(
                model,
                pool,
                cfg_for(name, afrolm_temperature=1.0, afrolm_generated_share=0.5),
                state,
                r,
                tmp_path / name,
                "cpu",
            )
        rounds = [candidates_of(tmp_path / name / "selection" / f"round-{r:03d}.jsonl") for r in range(3)]
        seen[name] = (rounds, set(state.holdout.tolist()))
        assert not set().union(*rounds) & seen[name][1]  # the held-out slice is never a candidate
    first = seen["random"]
    assert first[0][1] != first[0][2] and first[1]
    assert all(v == first for v in seen.values()), {k: [len(r) for r in v[0]] for k, v in seen.items()}


def test_the_junk_guard_applies_to_every_arm_the_control_included(tokenizer, trained, tmp_path):
    _, model = trained
    for name in ("random", "mix", "afrolm"):  # the arms that never score a block
        pool = make_pool(tokenizer)
        junk = plant_junk(pool, "yor", 6, seed=0)
        cfg = cfg_for(name, blocks_per_round=60, candidates_per_round=400, afrolm_temperature=1.0)
        state = SelectionState()
        for r in range(2):
            result = run_round(model, pool, cfg, state, r, tmp_path / name, "cpu")
            records, summary = read_round(tmp_path / name / "selection" / f"round-{r:03d}.jsonl")
            planted = [rec for rec in records if rec["block_id"] in junk]
            assert planted and all(rec["junk"] in ("repetitive", "bytes", "script") for rec in planted)
            assert not junk & set(result.chosen_ids.tolist()), (name, r)
            assert summary["junk_flagged"] >= len(planted)


def test_fixed_masks_depend_on_the_block_not_on_its_batch(tokenizer):
    pool = make_pool(tokenizer)
    ids = pool.ids("yor")[:20]
    blocks = torch.as_tensor(pool.blocks(ids))
    special = [0, 1, 2, 3, len(tokenizer) - 1]
    whole = block_mask(blocks, ids, 0.15, 7, special)
    reordered = block_mask(blocks[[5, 3]], ids[[5, 3]], 0.15, 7, special)
    assert torch.equal(reordered, whole[[5, 3]])
    assert not whole[torch.isin(blocks, torch.tensor(special))].any() and (whole.sum(1) >= 1).all()
    assert not torch.equal(block_mask(blocks, ids, 0.15, 8, special), whole)  # another seed, other positions
    share = whole.sum().item() / (~torch.isin(blocks, torch.tensor(special))).sum().item()
    assert 0.08 < share < 0.25


# ------------------------------------------------------------------ each strategy's scoring


def test_loss_and_entropy_score_their_measure_at_fixed_masks(tokenizer, trained, tmp_path):
    _, model = trained
    for name in ("loss", "entropy"):
        pool = make_pool(tokenizer)
        cfg = cfg_for(name, warmup_rounds=0)
        for r in range(2):  # the same block scores the same in both rounds (same weights, same mask)
            run_round(model, pool, cfg, SelectionState(), r, tmp_path / name, "cpu")
        rounds = [read_round(tmp_path / name / "selection" / f"round-{r:03d}.jsonl")[0] for r in range(2)]
        by_id = {rec["block_id"]: rec for rec in rounds[0]}
        both = [rec for rec in rounds[1] if rec["block_id"] in by_id]
        assert both and all(rec["score"] == by_id[rec["block_id"]]["score"] == rec[name] for rec in both)


def test_rho_scores_loss_minus_the_cached_irreducible_loss(tokenizer, trained, tmp_path, monkeypatch):
    initial, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for("rho", warmup_rounds=0, rho_reference_steps=30)
    state = SelectionState()
    run_round(model, pool, cfg, state, 0, tmp_path, "cpu")
    records, summary = read_round(tmp_path / "selection" / "round-000.jsonl")
    assert summary["mode"] == "scored"
    for rec in records:
        assert rec["score"] == pytest.approx(rec["loss"] - rec["ref_loss"], abs=2e-6)
    # ref_loss is the irreducible-loss model's loss on the block's fixed mask, cached by block id
    ids = np.array([rec["block_id"] for rec in records])
    blocks = torch.as_tensor(pool.blocks(ids))
    mask = block_mask(blocks, ids, cfg.mask_prob, mask_seed(cfg), special_token_ids(model).values())
    reference = irreducible.load_reference(model, state.reference, "cpu")
    expected = masked_scores(reference, blocks, mask, 64, "cpu")["loss"]
    assert [rec["ref_loss"] for rec in records] == pytest.approx(expected.tolist(), abs=1e-5)
    assert irreducible.cached(state.irreducible, ids) == pytest.approx(expected, abs=1e-5)
    assert not any(
        torch.equal(state.reference[k], v)
        for k, v in model.state_dict().items()
        if v.dtype.is_floating_point and v.numel() > 100
    )  # it was trained: not the model
    # a later round reuses the model and the cache: only blocks never scored get a reference forward
    weights, calls = state.reference, []
    real = irreducible.load_reference
    monkeypatch.setattr(irreducible, "load_reference", lambda *a: calls.append(1) or real(*a))
    run_round(model, pool, cfg, state, 1, tmp_path, "cpu")
    assert state.reference is weights
    new = candidates_of(tmp_path / "selection" / "round-001.jsonl") - set(ids.tolist())
    assert len(calls) == (1 if new else 0)


def test_rho_reference_trains_on_the_held_out_slice_only(tokenizer):
    model = tiny_model(tokenizer)
    pool = make_pool(tokenizer)
    holdout = pool.ids("hau")[:8]
    read = []
    real = pool.blocks
    pool.blocks = lambda ids: read.extend(int(i) for i in ids) or real(ids)
    rng_before = torch.get_rng_state()
    weights = irreducible.train_reference(
        model, pool, holdout, 5, 4, 1e-3, 0.15, torch.Generator().manual_seed(0), "cpu"
    )
    assert set(read) <= set(holdout.tolist()) and len(read) == 20
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert any(not torch.equal(weights[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="holdout_share"):
        irreducible.train_reference(model, pool, holdout[:0], 5, 4, 1e-3, 0.15, torch.Generator(), "cpu")


def test_rho_reference_with_a_width_reads_only_each_blocks_scored_prefix(tokenizer):
    model = tiny_model(tokenizer)
    pool = make_pool(tokenizer)
    holdout = pool.ids("hau")[:8]
    real = pool.blocks
    weights = {}
    for tail in ("kept", "scrambled"):  # the tokens past the prefix differ between the two runs

        def blocks(ids, tail=tail):
            out = np.array(real(ids), dtype=np.int64)
            if tail == "scrambled":
                out[:, 16:] = np.random.default_rng(0).permutation(out[:, 16:].ravel()).reshape(out[:, 16:].shape)
            return out

        pool.blocks = blocks
        weights[tail] = irreducible.train_reference(
            model, pool, holdout, 3, 4, 1e-3, 0.15, torch.Generator().manual_seed(0), "cpu", width=16
        )
    assert all(torch.equal(weights["kept"][k], weights["scrambled"][k]) for k in weights["kept"])
    pool.blocks = lambda ids: np.array(real(ids), dtype=np.int64)
    full = irreducible.train_reference(model, pool, holdout, 3, 4, 1e-3, 0.15, torch.Generator().manual_seed(0), "cpu")
    assert any(not torch.equal(full[k], weights["kept"][k]) for k in full)  # the width is what changed


def test_scores_without_entropy_keep_the_same_loss(tokenizer, trained):
    _, model = trained
    blocks = torch.as_tensor(make_pool(tokenizer).blocks(np.arange(12)), dtype=torch.long)
    mask = block_mask(blocks, np.arange(12), 0.15, 7, special_token_ids(model).values())
    both = masked_scores(model, blocks, mask, 5, "cpu")
    loss_only = masked_scores(model, blocks, mask, 5, "cpu", with_entropy=False)
    assert np.array_equal(both["loss"], loss_only["loss"])
    assert np.isfinite(both["entropy"]).all() and np.isnan(loss_only["entropy"]).all()


def test_mix_weights_move_toward_higher_excess_and_never_below_the_floor():
    weights = {"hau": 0.5, "yor": 0.3, "amh": 0.2}
    excess = {"hau": 0.0, "yor": 0.8, "amh": 0.1}
    new = mix.update_weights(weights, excess, step_size=1.0, floor=0.3)
    assert sum(new.values()) == pytest.approx(1.0)
    assert new["yor"] > 0.3 and new["hau"] < 0.5  # toward the language with the most excess loss
    for _ in range(200):  # sustained pressure: yor keeps gaining, the others never fall below the floor
        new = mix.update_weights(new, excess, step_size=1.0, floor=0.3)
    assert new["yor"] > 0.6 and min(new.values()) >= 0.3 / 3
    extreme = mix.update_weights(weights, {"yor": 100.0}, step_size=1.0, floor=0.3)
    assert extreme["hau"] == pytest.approx(0.1) and extreme["amh"] == pytest.approx(0.1)
    assert mix.update_weights(weights, excess, 0.0, 1.0) == pytest.approx({l: 1 / 3 for l in weights})
    # excess per language: mean of max(loss - ref_loss, 0), NaN ignored
    measured = {"yor": {"loss": np.array([3.0, 2.0, np.nan]), "ref_loss": np.array([2.0, 2.5, 1.0])}}
    assert mix.language_excess(measured) == {"yor": pytest.approx(0.5)}


def test_mix_round_shifts_kept_blocks_to_the_language_with_more_excess(tokenizer, trained, tmp_path, monkeypatch):
    _, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for("mix", warmup_rounds=0, mix_step_size=5.0, mix_floor=0.2)
    monkeypatch.setattr(mix, "language_excess", lambda m: {lang: 1.0 if lang == "hau" else 0.0 for lang in m})
    state = SelectionState()
    result = run_round(model, pool, cfg, state, 0, tmp_path / "mix", "cpu")
    run_round(model, pool, cfg_for("random", warmup_rounds=0), SelectionState(), 0, tmp_path / "random", "cpu")
    mixed = read_round(tmp_path / "mix" / "selection" / "round-000.jsonl")[1]["languages"]
    plain = read_round(tmp_path / "random" / "selection" / "round-000.jsonl")[1]["languages"]
    assert mixed["hau"]["chosen"] > plain["hau"]["chosen"]
    assert mixed["hau"]["chosen"] <= mixed["hau"]["candidates"]  # never beyond the shared candidates
    assert state.mix_weights["hau"] == max(state.mix_weights.values())
    assert min(state.mix_weights.values()) >= 0.2 / 4 and len(result.chosen_ids) == cfg.blocks_per_round
    assert {r["reason"] for r in read_round(tmp_path / "mix" / "selection" / "round-000.jsonl")[0] if r["chosen"]} == {
        "random"
    }


def test_afrolm_repetition_filter_rejects_fills_like_dey_dey_dey():
    prompt = "Wetin you dey do for house today make we go market"
    assert generate.check_generated(prompt, "Wetin you dey do for house dey dey dey", "dey dey dey", 4) == "repetitive"
    assert (
        generate.check_generated(prompt, "Wetin you dey do for house na dey na dey", "na dey na dey", 4) == "repetitive"
    )
    assert (
        generate.check_generated(prompt, "Wetin you dey do dey dey dey", "dey dey", 4) == "repetitive"
    )  # continues the prompt
    assert generate.check_generated("Ọmọ náà ń lọ sí ilé", "Ọmọ náà ń lọ sí ẹẹẹẹẹ", "ẹẹẹẹẹ", 4) == "repetitive"
    assert generate.check_generated(prompt, "Wetin you dey do for house make we go go", "make we go go", 4) is None
    assert (
        generate.check_generated(prompt, "Wetin you dey do for house make we chop rice", "make we chop rice", 4) is None
    )


def test_afrolm_generated_share_is_counted_in_the_round_budget(tokenizer, trained, tmp_path):
    _, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for(
        "afrolm", warmup_rounds=0, afrolm_temperature=1.0, afrolm_generated_share=0.25, afrolm_prompts_per_round=60
    )
    result = run_round(model, pool, cfg, SelectionState(), 0, tmp_path, "cpu")
    _, summary = read_round(tmp_path / "selection" / "round-000.jsonl")
    assert len(result.chosen_ids) == cfg.blocks_per_round  # generated blocks replace pool blocks
    assert summary["afrolm"]["used"] > 0
    for s in summary["languages"].values():
        assert s["reasons"].get("generated", 0) <= int(0.25 * s["quota"])


# ------------------------------------------------------------------ selection pressure


def test_topk_takes_the_highest_scores_and_exploration_the_rest():
    scores = np.arange(30, dtype=float)
    cfg = SelectionConfig(sampling="topk", exploration=0.0, blocks_per_round=10)
    chosen, reasons, _, _ = choose_in_language(scores, 10, cfg, np.random.default_rng(0))
    assert sorted(chosen.tolist()) == list(range(20, 30)) and set(reasons[20:]) == {"topk"}
    cfg = SelectionConfig(sampling="topk", exploration=0.5, blocks_per_round=10)
    chosen, reasons, _, _ = choose_in_language(scores, 10, cfg, np.random.default_rng(0))
    assert reasons.count("topk") == 5 and set(range(25, 30)) <= set(chosen.tolist())
    assert SelectionConfig(blocks_per_round=100).candidates == 300  # kept share 1 in 3 by default
    with pytest.raises(ValueError, match="selection.sampling"):
        SelectionConfig(sampling="greedy")
    with pytest.raises(ValueError, match="selection.kept_share"):
        SelectionConfig(kept_share=1.0)


def test_pressure_check_names_the_preset_the_language_and_the_numbers():
    pools = {"hau": 5000, "yor": 4000, "ssw": 60}
    check_pressure(SelectionConfig(blocks_per_round=1000), pools, "preset x")  # 3,000 candidates fit
    with pytest.raises(
        ConfigError,
        match=r"preset small: language hau would draw [\d,]+ candidates a round "
        r"but its pool holds 4,750 blocks",
    ):
        check_pressure(SelectionConfig(blocks_per_round=6000), pools, "preset small")
    # ssw's pool caps its candidates; keeping all of them would select nothing there
    cfg = SelectionConfig(blocks_per_round=2990, candidates_per_round=3000, holdout_share=0.0)
    with pytest.raises(ConfigError, match=r"preset tiny: language ssw would keep 60 of its 60 candidates"):
        check_pressure(cfg, pools, "preset tiny")


def test_every_shipped_preset_keeps_fewer_than_it_draws():
    from pretrain.config import PRESETS_DIR
    from pretrain.train import load_run_config, parse_args

    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    assert {"tiny", "study", "study_gpu"} <= set(names)
    for name in names:
        sel = load_run_config(parse_args(["--preset", name])).selection
        assert sel.blocks_per_round < sel.candidates, name
    gpu = load_run_config(parse_args(["--preset", "study_gpu"])).selection
    study_pool = {"amh": 5241, "hau": 5917, "ibo": 4090, "pcm": 10599, "som": 4167, "swa": 3308, "yor": 5868}
    check_pressure(gpu, study_pool, "preset study_gpu")  # the arithmetic in its comments
    assert gpu.blocks_per_round * 3 == gpu.candidates


def test_training_refuses_a_preset_whose_candidates_exceed_a_pool(tmp_path, capsys):
    from tests.support.pretrain import build_inputs, run_args

    from pretrain import train

    corpus_dir, tok_dir = build_inputs(tmp_path, n=60)
    code = train.main(
        [
            "--preset",
            "tiny",
            *run_args(
                corpus_dir,
                tok_dir,
                tmp_path / "run",
                "selection.blocks_per_round=5000",
                "selection.candidates_per_round=0",
            ),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "preset tiny with overrides: language amh would draw" in err
    assert "candidates a round but its pool holds" in err and not (tmp_path / "run" / "checkpoints").exists()


def test_score_tokens_scores_each_candidate_on_its_first_tokens(tokenizer, trained, tmp_path):
    """`score_tokens=N`: a candidate's loss is its loss over the fixed masks of its first N tokens."""
    _, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for("loss", warmup_rounds=0, score_tokens=8)
    run_round(model, pool, cfg, SelectionState(), 0, tmp_path, "cpu")
    records = read_round(tmp_path / "selection" / "round-000.jsonl")[0]
    ids = np.array([rec["block_id"] for rec in records])
    head = torch.as_tensor(np.asarray(pool.blocks(ids), dtype=np.int64))[:, :8]
    special = [v for v in special_token_ids(model).values() if v is not None]
    mask = block_mask(head, ids, cfg.mask_prob, mask_seed(cfg), special)
    expected = masked_scores(model, head, mask, cfg.score_batch_size, "cpu")["loss"]
    np.testing.assert_allclose([rec["loss"] for rec in records], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="selection.score_tokens"):
        cfg_for("loss", score_tokens=4)
