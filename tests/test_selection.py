"""pretrain/selection.py, scoring.py, generate.py: self-active selection, on the set-up of
tests/support/selection.py."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common.cli import settings_rows
from common.config import ConfigError, load_config
from pretrain import generate
from pretrain.scoring import eval_mode, masked_scores, scoring_mask
from pretrain.selection import (
    SelectionConfig,
    SelectionState,
    choose_in_language,
    gumbel_top_k,
    holdout_count,
    language_quotas,
    robust_z,
    run_round,
)
from pretrain.strategies import STRATEGIES
from tests.support.selection import (  # noqa: F401  (fixtures: one_thread, tokenizer, trained)
    BLOCK_LEN,
    MemoryPool,
    cfg_for,
    corpus,
    make_pool,
    one_thread,
    plant_junk,
    read_round,
    synthetic_sentences,
    tiny_model,
    tokenizer,
    trained,
)

# ------------------------------------------------------------------ quotas


def test_quotas_sum_and_follow_n_to_the_alpha():
    sizes = {"yor": 90_000, "hau": 10_000, "amh": 1_000, "swa": 100}
    for alpha in (0.0, 0.3, 0.5, 1.0):
        quotas = language_quotas(sizes, 300, alpha)
        weights = {l: n**alpha for l, n in sizes.items()}
        exact = {l: 300 * w / sum(weights.values()) for l, w in weights.items()}
        assert sum(quotas.values()) == 300
        assert all(abs(quotas[l] - exact[l]) < 1 for l in sizes), (alpha, quotas, exact)
    assert language_quotas(sizes, 300, 0.0) == {l: 75 for l in sizes}
    # a lower alpha moves share from the big language to the small ones
    assert language_quotas(sizes, 300, 0.3)["swa"] > language_quotas(sizes, 300, 1.0)["swa"]


def test_quotas_cap_small_languages_and_redistribute():
    sizes = {"yor": 1000, "hau": 500, "swa": 3, "amh": 0}
    quotas = language_quotas(sizes, 100, 0.0)  # uniform would give swa 33
    assert quotas["swa"] == 3 and quotas["amh"] == 0
    assert quotas["yor"] + quotas["hau"] == 97 and abs(quotas["yor"] - quotas["hau"]) <= 1
    capped = language_quotas(sizes, 100, 1.0, caps={"yor": 20, "hau": 500, "swa": 3})
    assert capped["yor"] == 20 and sum(capped.values()) == 100


def test_quotas_beyond_the_whole_pool_exceed_caps_only_then():
    quotas = language_quotas({"yor": 5, "hau": 2}, 10, 1.0)
    assert sum(quotas.values()) == 10 and quotas["yor"] >= 5 and quotas["hau"] >= 2


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["yor", "hau", "amh", "swa", "ibo"]), st.integers(0, 5000), min_size=1),
    st.integers(0, 3000),
    st.floats(0.0, 1.0),
)
def test_quotas_properties(sizes, total, alpha):
    quotas = language_quotas(sizes, total, alpha)
    assert set(quotas) == set(sizes) and all(q >= 0 for q in quotas.values())
    if any(sizes.values()):
        assert sum(quotas.values()) == total
    if total <= sum(sizes.values()):
        assert all(quotas[l] <= sizes[l] for l in sizes)
    assert all(quotas[l] == 0 for l, n in sizes.items() if n == 0)


# ------------------------------------------------------------------ config


def test_config_errors_name_the_setting(tmp_path):
    with pytest.raises(ValueError, match="selection.strategy"):
        SelectionConfig(strategy="hardest")
    with pytest.raises(ValueError, match="selection.candidates_per_round"):
        SelectionConfig(blocks_per_round=100, candidates_per_round=50)
    with pytest.raises(ConfigError, match="exploration"):
        load_config(SelectionConfig, None, ["exploration=1.5"])
    cfg = load_config(SelectionConfig, None, ["strategy=entropy", "alpha=0.5"])
    assert cfg.strategy == "entropy" and cfg.alpha == 0.5
    # every setting has its --help text (the comment on its line or lines)
    docs = {name: doc for name, _default, doc in settings_rows(SelectionConfig)}
    assert set(docs) == set(SelectionConfig.__dataclass_fields__)
    assert all(docs.values()), [name for name, doc in docs.items() if not doc]


# ------------------------------------------------------------------ pure choice


def test_gumbel_prefers_high_scores_but_is_not_a_top_k():
    scores = np.linspace(0.0, 3.0, 60)
    counts = np.zeros(60)
    sets = set()
    for seed in range(300):
        picked = gumbel_top_k(scores, 10, 1.0, np.random.default_rng(seed))
        counts[picked] += 1
        sets.add(tuple(sorted(picked)))
    top, bottom = counts[-10:].mean(), counts[:10].mean()
    assert top > 3 * bottom > 0  # strongly preferred, yet the lowest still get picked
    assert len(sets) > 250  # no collapse onto one deterministic set
    assert np.corrcoef(scores, counts)[0, 1] > 0.9


def test_choose_in_language_guards_junk_and_explores():
    rng = np.random.default_rng(0)
    scores = rng.normal(5.0, 0.3, 100)
    scores[:5] = 20.0  # far above the norm: junk
    scores[5] = np.nan  # unscorable: junk
    cfg = SelectionConfig(exploration=0.2, blocks_per_round=30, candidates_per_round=100)
    chosen, reasons, z, junk = choose_in_language(scores, 30, cfg, rng)
    assert len(chosen) == len(set(chosen.tolist())) == 30
    assert not set(chosen.tolist()) & set(range(6))
    assert reasons[:6] == ["junk_guard"] * 6 and np.all(z[:5] > cfg.junk_zscore)
    assert list(junk[:6]) == ["score"] * 5 + ["unscorable"] and not any(junk[6:])
    assert reasons.count("explore") == 6 and reasons.count("gumbel") == 24
    # when only junk is left it fills the quota, least extreme first, never duplicated
    small = np.array([5.0, 5.1, 4.9, 5.05, 4.95, 5.02, 4.98, 5.01, np.nan, 30.0])
    chosen, reasons, _, _ = choose_in_language(small, 10, cfg, rng)
    assert sorted(chosen.tolist()) == list(range(10)) and reasons.count("junk_fill") == 2
    chosen, reasons, _, _ = choose_in_language(small, 9, cfg, rng)
    assert 8 not in chosen and reasons[8] == "junk_guard" and reasons[9] == "junk_fill"
    # content junk (found without the model) is kept out of random choice too
    kinds = np.array([""] * 8 + ["script", "repetitive"], dtype=object)
    chosen, reasons, _, _ = choose_in_language(None, 8, cfg, rng, junk=kinds)
    assert sorted(chosen.tolist()) == list(range(8)) and set(reasons[:8]) == {"random"}


def test_robust_z_ties_and_nans():
    assert np.all(robust_z(np.array([2.0, 2.0, 2.0])) == 0)
    z = robust_z(np.array([1.0, 1.0, 1.0, 1.0, 9.0, np.nan]))
    assert z[4] > 3 and np.isnan(z[5])


# ------------------------------------------------------------------ scoring


def test_scores_match_a_plain_forward_and_never_mask_specials(tokenizer):
    model = tiny_model(tokenizer)
    pool = make_pool(tokenizer)
    blocks = torch.as_tensor(pool.blocks(pool.ids("amh")[:12]))
    special = [0, 1, 2, 3, len(tokenizer) - 1]
    mask = scoring_mask(blocks, 0.15, torch.Generator().manual_seed(1), special)
    out = masked_scores(model, blocks, mask, 5, "cpu")
    assert not mask[torch.isin(blocks, torch.tensor(special))].any()
    assert (mask.sum(1) >= 1).all()
    model.eval()
    with torch.no_grad():  # reference: the full standard forward and cross-entropy
        logits = model(
            input_ids=blocks.masked_fill(mask, len(tokenizer) - 1), attention_mask=(blocks != 1).long()
        ).logits
        nll = torch.nn.functional.cross_entropy(logits[mask], blocks[mask], reduction="none")
        logp = logits[mask].log_softmax(-1)
        ent = -(logp.exp() * logp).sum(-1)
    rows = mask.nonzero()[:, 0]
    for i in range(len(blocks)):
        assert out["loss"][i] == pytest.approx(nll[rows == i].mean().item(), rel=1e-5)
        assert out["entropy"][i] == pytest.approx(ent[rows == i].mean().item(), rel=1e-5)
    assert np.all(out["entropy"] <= np.log(len(tokenizer)) + 1e-6)


def test_scoring_leaves_global_rng_train_mode_and_weights_alone(tokenizer):
    model = tiny_model(tokenizer)
    model.train()
    model.roberta.embeddings.dropout.eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    weights = copy.deepcopy(model.state_dict())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    run_round(model, make_pool(tokenizer), cfg_for("loss", warmup_rounds=0), SelectionState(), 0, None, "cpu")
    assert torch.equal(torch.get_rng_state(), before)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    with eval_mode(model):
        assert not model.training and torch.is_inference_mode_enabled()
    assert model.training


# ------------------------------------------------------------------ rounds


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_round_counts_equal_quotas_for_every_strategy(tokenizer, trained, strategy, tmp_path):
    _, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for(strategy)
    state = SelectionState()
    for r in range(2):  # round 0 is the random warm-up; round 1 uses the strategy
        result = run_round(model, pool, cfg, state, r, tmp_path, "cpu")
    records, summary = read_round(tmp_path / "selection" / "round-001.jsonl")
    expected = {"random": "random", "afrolm": "generate", "mix": "mixture"}.get(strategy, "scored")
    assert summary["mode"] == expected
    sizes = {
        lang: len(pool.ids(lang)) - holdout_count(len(pool.ids(lang)), cfg.holdout_share) for lang in pool.languages
    }
    quotas = language_quotas(sizes, cfg.blocks_per_round, cfg.alpha)
    if strategy == "mix":  # the mix sets its own language shares
        quotas = {lang: s["quota"] for lang, s in summary["languages"].items()}
    got = {lang: int(np.isin(result.chosen_ids, pool.ids(lang)).sum()) for lang in pool.languages}
    assert got == quotas and len(result.chosen_ids) == cfg.blocks_per_round
    assert len(set(result.chosen_ids.tolist())) == len(result.chosen_ids)
    assert {r["block_id"] for r in records if r["chosen"]} == set(result.chosen_ids.tolist())
    assert summary == result.summary and summary["shortfall"] == 0
    assert result.scoring_seconds >= 0
    if STRATEGIES[strategy].score is not None:
        assert all(r["score"] is not None or r["reason"] == "junk_guard" for r in records)
        assert summary["explore"] > 0


def test_rounds_are_deterministic_and_resume_from_state(tokenizer, trained, tmp_path):
    _, model = trained
    cfg = cfg_for("rho")
    files = []
    for run in ("a", "b"):
        state = SelectionState()
        for r in range(3):
            run_round(model, make_pool(tokenizer), cfg, state, r, tmp_path / run, "cpu")
        files.append([(tmp_path / run / "selection" / f"round-{r:03d}.jsonl").read_bytes() for r in range(3)])
    assert files[0] == files[1]
    # resume: a state saved after round 1 and reloaded gives the same round 2
    state = SelectionState()
    for r in range(2):
        run_round(model, make_pool(tokenizer), cfg, state, r, tmp_path / "c", "cpu")
    torch.save(state.state_dict(), tmp_path / "state.pt")
    resumed = SelectionState.from_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    run_round(model, make_pool(tokenizer), cfg, resumed, 2, tmp_path / "c", "cpu")
    assert (tmp_path / "c" / "selection" / "round-002.jsonl").read_bytes() == files[0][2]
    # another round index draws other candidates
    cands = [
        {r["block_id"] for r in read_round(tmp_path / "a" / "selection" / f"round-{i:03d}.jsonl")[0]} for i in (1, 2)
    ]
    assert cands[0] != cands[1]


def test_loss_strategy_prefers_hard_blocks_statistically(tokenizer, trained, tmp_path):
    _, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for("loss", warmup_rounds=0, exploration=0.0, gumbel_temperature=0.3)
    result = run_round(model, pool, cfg, SelectionState(), 0, tmp_path, "cpu")
    records, summary = read_round(tmp_path / "selection" / "round-000.jsonl")
    for lang, s in summary["languages"].items():
        if s["quota"] < s["candidates"]:  # a real choice was made
            assert s["mean_score_chosen"] > s["mean_score_candidates"], lang
    # ... but not a deterministic top-k: some chosen blocks score below unchosen ones
    below = 0
    for lang in pool.languages:
        rows = [r for r in records if r["lang"] == lang and r["score"] is not None]
        best_unchosen = max((r["score"] for r in rows if not r["chosen"]), default=-np.inf)
        below += sum(r["score"] < best_unchosen for r in rows if r["chosen"])
    assert below > 0
    assert len(result.chosen_ids) == cfg.blocks_per_round


def test_fewer_candidates_than_quota_row10(tokenizer, tmp_path, caplog):
    model = tiny_model(tokenizer)
    train, valid = corpus()
    train["swa"] = train["swa"][:1]  # swa: 1 block, far below its quota
    pool = MemoryPool(tokenizer, train, valid)
    total = sum(len(pool.ids(lang)) for lang in pool.languages)
    cfg = cfg_for(
        "loss", warmup_rounds=0, blocks_per_round=total + 10, candidates_per_round=total + 50, holdout_share=0.0
    )  # every block can be chosen
    with caplog.at_level(logging.WARNING, logger="pretrain.selection"):
        result = run_round(model, pool, cfg, SelectionState(), 0, tmp_path, "cpu")
    chosen = result.chosen_ids.tolist()
    assert sorted(chosen) == sorted(np.concatenate([pool.ids(l) for l in pool.languages]).tolist())
    assert len(set(chosen)) == len(chosen) == total
    _, summary = read_round(tmp_path / "selection" / "round-000.jsonl")
    assert summary["shortfall"] == 10 and summary["languages"]["swa"]["shortfall"] > 0
    assert "10 blocks short" in caplog.text
    # a language short of its quota inside a big enough pool: the others make up for it
    cfg = cfg_for("entropy", warmup_rounds=0, blocks_per_round=60, candidates_per_round=200)
    result = run_round(model, pool, cfg, SelectionState(), 1, tmp_path, "cpu")
    _, summary = read_round(tmp_path / "selection" / "round-001.jsonl")
    assert len(result.chosen_ids) == 60 and summary["shortfall"] == 0
    # swa's whole pool is its candidates; it still keeps only the kept share of them (60 of 200)
    swa = summary["languages"]["swa"]
    assert swa["candidates"] == len(pool.ids("swa")) and swa["chosen"] == -(-60 * swa["candidates"] // 200)
    assert summary["languages"]["swa"]["shortfall"] > 0


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_junk_blocks_keep_their_share_row11(tokenizer, trained, strategy, tmp_path):
    initial, model = trained
    pool = make_pool(tokenizer)
    junk = set()
    for i, lang in enumerate(("yor", "hau", "amh")):
        junk |= plant_junk(pool, lang, 4, seed=i)
    all_ids = np.concatenate([pool.ids(l) for l in pool.languages])
    pool_share = len(junk) / len(all_ids)
    cfg = cfg_for(strategy, warmup_rounds=1, blocks_per_round=60, candidates_per_round=400, gumbel_temperature=0.5)
    state = SelectionState()
    for r in range(2):  # round 0: random warm-up; round 1: the strategy
        result = run_round(model, pool, cfg, state, r, tmp_path, "cpu")
        records, summary = read_round(tmp_path / "selection" / f"round-{r:03d}.jsonl")
        chosen_share = len(junk & set(result.chosen_ids.tolist())) / len(result.chosen_ids)
        assert chosen_share <= pool_share, (r, chosen_share, pool_share)
        planted = [rec for rec in records if rec["block_id"] in junk]
        assert planted and all(rec["junk"] and not rec["chosen"] for rec in planted)
        assert summary["junk_flagged"] >= len(planted) and summary["junk_chosen"] == 0
        assert {rec["junk"] for rec in planted} <= {"repetitive", "bytes", "script", "score"}


# ------------------------------------------------------------------ afrolm


def test_afrolm_generates_filters_and_adds_to_the_pool(tokenizer, trained, tmp_path):
    _, model = trained
    pool = make_pool(tokenizer)
    before = {lang: len(pool.ids(lang)) for lang in pool.languages}
    # sampled: greedy fills of this 150-step model are all `▁` and fail the filters (no letters)
    cfg = cfg_for(
        "afrolm", warmup_rounds=0, afrolm_prompts_per_round=40, afrolm_temperature=1.0, afrolm_generated_share=0.5
    )
    state = SelectionState()
    result = run_round(model, pool, cfg, state, 0, tmp_path, "cpu")
    records, summary = read_round(tmp_path / "selection" / "round-000.jsonl")
    gen = summary["afrolm"]
    assert 0 < gen["prompts"] <= 40 and gen["kept"] == sum(len(t) for t in pool.generated.values())
    assert gen["kept"] > 0 and gen["blocks"] > 0
    assert gen["prompts"] == gen["kept"] + sum(gen["dropped"].values())
    assert gen["dropped"].get("script", 0) > 0  # Ge'ez filled into Latin prompts was dropped
    new_ids = {int(i) for ids in state.generated_ids.values() for i in ids}
    assert len(new_ids) == gen["blocks"]
    assert sum(len(pool.ids(l)) for l in pool.languages) == sum(before.values()) + gen["blocks"]
    used = new_ids & set(result.chosen_ids.tolist())  # generated blocks are trained on, within the budget
    assert len(used) == gen["used"] > 0
    for s in summary["languages"].values():
        assert s["reasons"].get("generated", 0) <= 0.5 * s["quota"]
    assert {r["reason"] for r in records if r["chosen"]} <= {"generated", "random"}
    # prompts come from the training pool only; every kept sentence keeps its prompt's head
    valid = {t for texts in pool.valid.values() for t in texts}
    prompts = [t for texts in pool.sampled.values() for t in texts]
    assert prompts and not set(prompts) & valid
    for lang, texts in pool.generated.items():
        for text in texts:
            assert text not in pool.train[lang] and text not in valid
            assert any(text.split()[:2] == p.split()[:2] for p in pool.sampled[lang])


def test_fill_keeps_the_prompt_head_and_never_emits_special_tokens(tokenizer, trained):
    _, model = trained
    texts = synthetic_sentences("yor", 6, 7) + synthetic_sentences("amh", 6, 7)
    prompts, counts = generate.make_prompts(tokenizer, texts, 0.15, BLOCK_LEN, 4)
    assert prompts and counts["prompt_too_short"] + len(prompts) == len(texts)
    assert counts["prompt_truncated"] > 0 and all(len(p.ids) <= BLOCK_LEN for p in prompts)
    for sample in (dict(temperature=0.0), dict(temperature=1.0, top_k=20)):
        outs = generate.fill_prompts(model, prompts, torch.Generator().manual_seed(0), 4, "cpu", **sample)
        for prompt, ids in zip(prompts, outs):
            keep = [i for i in range(len(ids)) if i not in prompt.fill]
            assert [ids[i] for i in keep] == [prompt.ids[i] for i in keep]
            assert not {ids[i] for i in prompt.fill} & {0, 1, 2, 3, len(tokenizer) - 1}
    first = generate.fill_prompts(model, prompts, torch.Generator().manual_seed(0), 4, "cpu", temperature=1.0, top_k=20)
    assert first == outs  # seeded: the same generator seed gives the same sentences


def test_last_words_and_filters():
    pieces = ["▁Ọ", "mọ", "▁n", "á", "à", "▁", "ń", "▁lọ", "▁s", "í", "▁il", "é", "."]
    assert generate.word_starts(pieces) == [0, 2, 5, 7, 8, 10]
    assert generate.last_words_positions(pieces, 0.15) == [10, 11, 12]  # 1 of 6 words
    assert generate.last_words_positions(pieces, 0.5) == list(range(7, 13))
    assert generate.last_words_positions(["▁one"], 0.5) == []
    prompt = "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́."
    assert generate.check_generated(prompt, "Ọmọ náà ń lọ sí ọjà.", "ọjà.", 4) is None
    assert generate.check_generated(prompt, "Ọmọ náà ń lọ sí ቤት።", "ቤት።", 4) == "script"
    assert generate.check_generated(prompt, prompt, "lójoojúmọ́.", 4) == "same_as_prompt"
    assert generate.check_generated(prompt, "Ọmọ náà", "náà", 4) == "too_short"
    assert generate.check_generated(prompt, "Ọmọ náà ń lọ sí 🙂", "🙂", 4) == "no_letters"
    assert generate.check_generated(prompt, "Ọmọ náà ń lọ sí \ufffd", "\ufffd", 4) == "invalid_characters"
    assert generate.main_script("ልጁ በየቀኑ ወደ school") == "Ethiopic"


def test_block_stats_from_token_ids(tokenizer):
    from pretrain.scoring import block_stats, token_table

    table = token_table(tokenizer)
    yor = tokenizer("Ọmọ náà ń lọ sí ilé-ìwé", add_special_tokens=False)["input_ids"]
    amh = tokenizer("ልጁ በየቀኑ ወደ ትምህርት ቤት", add_special_tokens=False)["input_ids"]
    byte_ids = tokenizer.convert_tokens_to_ids(["<0xC3>", "<0x82>"])
    rep = tokenizer.convert_tokens_to_ids(["ẹ"]) * 20
    rows = [[0, *yor, 2], [0, *amh, 2], [0, *byte_ids, *yor[:2], 2], [0, *rep, 2, 1, 1]]
    width = max(map(len, rows))
    blocks = np.array([r + [1] * (width - len(r)) for r in rows])
    stats = block_stats(blocks, table, [0, 1, 2, 3, len(tokenizer) - 1])
    assert stats["distinct"][0] == len(set(yor)) / len(yor)
    assert stats["distinct"][3] == 1 / 20
    assert stats["bytes"][2] == 2 / 4 and stats["bytes"][0] == 0
    latin, ethiopic = table.scripts.index("Latin"), table.scripts.index("Ethiopic")
    assert stats["scripts"][1, ethiopic] > 0 and stats["scripts"][1, latin] == 0
    assert stats["scripts"][0, latin] > 0 and stats["scripts"][0, ethiopic] == 0
    cfg = SelectionConfig()
    from pretrain.selection import content_junk

    kinds = content_junk(stats, ["yor", "yor", "yor", "yor"], cfg)
    assert list(kinds) == ["", "script", "bytes", "repetitive"]


def test_state_counts_choices(tokenizer, trained, tmp_path):
    _, model = trained
    pool = make_pool(tokenizer)
    cfg = cfg_for("loss")
    state = SelectionState()
    chosen, seen = [], set()
    for r in range(3):
        result = run_round(model, pool, cfg, state, r, tmp_path, "cpu")
        ids = set(result.chosen_ids.tolist())
        assert result.summary["chosen_before"] == len(ids & seen)
        seen |= ids
        chosen.append(ids)
    assert int(state.times_chosen.sum()) == 3 * cfg.blocks_per_round
    assert sorted(state.last_chosen.tolist()) == sorted(chosen[2])
    assert state.rounds_done == 3
