"""Noise blocks (`data.noise_share`, pretrain/noise.py): the positive control of selection.

The pool is the real `PackedBlockPool` over a block cache written from test_selection's
in-memory pool (Yoruba, Hausa, Amharic in Ge'ez, Swahili), rounds run on its tiny model; one
end-to-end run trains with noise and resumes bit-identically.
"""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest
import torch

from common.config import ConfigError
from pretrain import noise, selection
from pretrain.config import DataConfig
from pretrain.data import PackedBlockPool, load_valid_blocks, pack_documents, special_ids
from pretrain.runlog import result_settings
from pretrain.selection import SelectionState, check_pressure, holdout_count, run_round
from tests.support.selection import (  # noqa: F401  (fixtures: one_thread, tokenizer, trained)
    MemoryPool,
    cfg_for,
    corpus,
    one_thread,
    read_round,
    tokenizer,
    trained,
)

SHARE = 0.33


@pytest.fixture(scope="module")
def cache(tokenizer, tmp_path_factory):
    """test_selection's pool as a block cache (languages sorted, as PackedBlockPool numbers
    them), with a valid split beside it."""
    root = tmp_path_factory.mktemp("noise-cache")
    train, valid = corpus()
    plain = MemoryPool(tokenizer, dict(sorted(train.items())), valid)
    for lang in plain.languages:
        (root / lang).mkdir()
        np.save(root / lang / "train.npy", plain.blocks(plain.ids(lang)).astype(np.int32))
        docs = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in valid[lang])
        np.save(root / lang / "valid.npy", pack_documents(docs, plain.block_len, special_ids(tokenizer), True)[0])
    (root / "index.json").write_text(json.dumps({"block_len": plain.block_len}))
    return root


def noisy(cache, tokenizer, share=SHARE, langs=None) -> PackedBlockPool:
    langs = langs or sorted(corpus()[0])
    return PackedBlockPool(cache, langs, tokenizer, cache, noise_share=share)


def real_blocks(cache, lang) -> np.ndarray:
    return np.load(cache / lang / "train.npy")


# ------------------------------------------------------------------ the noise blocks


def test_noise_kinds_shares_and_contents(cache, tokenizer):
    pool = noisy(cache, tokenizer)
    special = np.asarray(tokenizer.all_special_ids)
    assert pool.n_noise > 0 and len(pool) == pool.n_real + pool.n_noise
    for lang in pool.languages:
        ids, own = pool.ids(lang), real_blocks(cache, lang)
        kinds = pool.noise_kind(ids)
        assert (kinds[: len(own)] == "").all() and np.array_equal(pool.blocks(ids[: len(own)]), own)
        assert np.array_equal(ids[len(own) :], pool.noise_ids(lang))
        n_noise = len(ids) - len(own)
        assert n_noise == noise.noise_count(len(own), SHARE)
        assert abs(n_noise / len(ids) - SHARE) <= 1 / len(ids)  # the share of the pool, to rounding
        counts = {k: int((kinds == k).sum()) for k in noise.KINDS}
        assert sum(counts.values()) == n_noise and max(counts.values()) - min(counts.values()) <= 1
        blocks = pool.blocks(ids)
        assert (blocks[:, 0] == tokenizer.bos_token_id).all()
        own_sorted = {tuple(np.sort(row)) for row in own}
        others = {
            row.tobytes()
            for other in pool.languages
            if other != lang
            for row in real_blocks(cache, other).astype(np.int64)
        }
        pieces = set(np.unique(own).tolist()) - set(special.tolist())
        for row, kind in zip(blocks, kinds):
            if kind == "shuffled":  # a real block's tokens, its special tokens in place
                assert tuple(np.sort(row)) in own_sorted
            elif kind == "foreign":  # another language's training block
                assert row.tobytes() in others
            elif kind == "unigram":  # the language's own ordinary pieces after <s>
                assert set(row[1:].tolist()) <= pieces
        shuffled = blocks[kinds == "shuffled"]
        moved = [row for row in shuffled if not any(np.array_equal(row, r) for r in own)]
        assert len(moved) == len(shuffled)  # every shuffled block differs from every real one


def test_noise_is_deterministic_and_needs_no_tokenizer_or_seed(cache, tokenizer):
    a, b = noisy(cache, tokenizer), noisy(cache, None)  # None: how a finished run's pool is read
    every = np.arange(len(a))
    assert np.array_equal(a.blocks(every), b.blocks(every))
    assert a.noise_kind(every).tolist() == b.noise_kind(every).tolist()
    # the seed is fixed per language and kind, never train.seed or selection.seed
    assert (
        noise._rng("yor", "unigram").random()
        == np.random.default_rng([noise.NOISE_SEED, zlib.crc32(b"yor"), 2]).random()
    )
    # shuffling keeps every special token where it was
    special = np.asarray(tokenizer.all_special_ids)
    rows = real_blocks(cache, "hau")[:20]
    out = noise.shuffle_tokens(rows, special, np.random.default_rng(0))
    assert np.array_equal(np.isin(out, special), np.isin(rows, special))
    assert np.array_equal(out[np.isin(out, special)], rows[np.isin(rows, special)])


def test_one_language_has_no_foreign_noise_and_zero_share_none(cache, tokenizer):
    pool = noisy(cache, tokenizer, langs=["hau"])
    kinds = pool.noise_kind(pool.noise_ids("hau"))
    assert set(kinds) == {"shuffled", "unigram"} and abs((kinds == "shuffled").sum() - (kinds == "unigram").sum()) <= 1
    plain = noisy(cache, tokenizer, share=0.0)
    assert plain.n_noise == 0 and len(plain) == plain.n_real
    assert (plain.noise_kind(np.arange(len(plain))) == "").all()
    with pytest.raises(ConfigError, match="data.noise_share"):
        DataConfig(noise_share=0.95)
    # left out of run.json when 0, so runs made before the setting existed keep their manifests
    assert "data.noise_share" not in result_settings({"data": {"noise_share": 0.0}})
    assert result_settings({"data": {"noise_share": SHARE}})["data.noise_share"] == SHARE


def test_noise_is_never_validation_nor_held_out(cache, tokenizer, trained):
    _, model = trained
    pool = noisy(cache, tokenizer)
    noise_ids = set(range(pool.n_real, pool.n_base))
    rows = {row.tobytes() for row in pool.blocks(np.arange(len(pool)))}
    for lang in pool.languages:
        valid = load_valid_blocks(cache, lang).astype(np.int64)
        assert len(valid) and not any(row.tobytes() in rows for row in valid)
    cfg = cfg_for("rho", warmup_rounds=0, holdout_share=0.1)
    state = SelectionState()
    run_round(model, pool, cfg, state, 0, None, "cpu")
    held = set(state.holdout.tolist())
    assert held and not held & noise_ids
    for lang in pool.languages:  # the share of the language's real blocks, as without noise
        assert len(held & set(range(*_real_range(pool, lang)))) == holdout_count(
            len(real_blocks(cache, lang)), cfg.holdout_share
        )
    # and the same held-out slice as a pool without noise
    plain_state = SelectionState()
    run_round(model, noisy(cache, tokenizer, share=0.0), cfg, plain_state, 0, None, "cpu")
    assert torch.equal(plain_state.holdout, state.holdout)


def _real_range(pool, lang):
    ids = pool.ids(lang)
    return int(ids[0]), int(ids[0]) + len(ids) - len(pool.noise_ids(lang))


def test_pressure_check_counts_noise_as_candidates_never_as_holdout():
    pools = {"hau": 300, "yor": 300}
    cfg = selection.SelectionConfig(blocks_per_round=100, candidates_per_round=650)
    with pytest.raises(ConfigError, match="its pool holds 285 blocks"):
        check_pressure(cfg, pools, "preset x")
    noise_blocks = {lang: noise.noise_count(n, SHARE) for lang, n in pools.items()}
    check_pressure(cfg, pools, "preset x", noise_blocks)  # 285 + 148 blocks each: they fit
    with pytest.raises(ConfigError, match="its pool holds 433 blocks"):
        check_pressure(
            selection.SelectionConfig(blocks_per_round=300, candidates_per_round=900), pools, "preset x", noise_blocks
        )


# ------------------------------------------------------------------ rounds report it


def binomial_ok(k: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(k - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def expected_uniform(summary) -> float:
    """The noise a uniform choice among each language's clean candidates keeps, in expectation."""
    total = sum(s["chosen"] for s in summary["languages"].values())
    return sum(s["chosen"] * s["noise_clean_share"] for s in summary["languages"].values()) / total


def test_a_real_round_reports_noise_share_and_random_keeps_its_share(cache, tokenizer, trained, tmp_path):
    _, model = trained
    pool = noisy(cache, tokenizer)
    chosen = noise_chosen = 0
    expected = []
    for r in range(4):
        cfg = cfg_for("random", blocks_per_round=120, candidates_per_round=360)
        result = run_round(model, pool, cfg, SelectionState(), r, tmp_path, "cpu")
        records, summary = read_round(tmp_path / "selection" / f"round-{r:03d}.jsonl")
        kinds = pool.noise_kind(result.chosen_ids)
        # the summary's counts are the chosen ids' kinds; every candidate line names its kind
        assert summary["noise"]["chosen"] == {"all": len(kinds), **{k: int((kinds == k).sum()) for k in noise.KINDS}}
        assert summary["noise_share"] == round(float((kinds != "").mean()), 6)
        assert summary["noise_share_by_kind"] == {k: round(float((kinds == k).mean()), 6) for k in noise.KINDS}
        assert all(rec["noise"] == (pool.noise_kind([rec["block_id"]])[0] or None) for rec in records)
        cand = [rec["noise"] for rec in records]
        assert summary["noise_candidate_share"] == round(sum(map(bool, cand)) / len(cand), 6)
        for s in summary["languages"].values():
            assert s["noise"]["candidates"]["all"] == s["candidates"] and s["noise_share"] is not None
        assert summary["noise_candidate_share"] == pytest.approx(SHARE, abs=0.08)
        chosen += len(kinds)
        noise_chosen += int((kinds != "").sum())
        expected.append(expected_uniform(summary) * len(kinds))
    # random keeps about the noise's share of the clean candidates (binomial bounds over 480 blocks)
    assert binomial_ok(noise_chosen, chosen, sum(expected) / chosen), (noise_chosen, chosen, sum(expected))


def test_the_junk_guard_flags_other_script_foreign_noise_only(cache, tokenizer, trained, tmp_path):
    _, model = trained
    pool = noisy(cache, tokenizer)
    cfg = cfg_for("random", blocks_per_round=200, candidates_per_round=600)
    run_round(model, pool, cfg, SelectionState(), 0, tmp_path, "cpu")
    records, summary = read_round(tmp_path / "selection" / "round-000.jsonl")
    flagged = {(rec["noise"], rec["junk"]) for rec in records if rec["junk"]}
    assert flagged == {("foreign", "script")}  # shuffled and unigram noise pass the token guard
    counts = summary["noise"]
    assert counts["clean"]["shuffled"] == counts["candidates"]["shuffled"]
    assert counts["clean"]["unigram"] == counts["candidates"]["unigram"]
    # amh (Ge'ez) gets Latin blocks, the Latin languages get some Ge'ez ones: those are flagged
    amh = summary["languages"]["amh"]["noise"]
    assert amh["candidates"]["foreign"] > 0 and amh["clean"]["foreign"] == 0
    assert 0 < counts["clean"]["foreign"] < counts["candidates"]["foreign"]


def fake_scorer(pool, current, noise_shift: float, reference_shift: float = 0.0):
    """`masked_scores` stand-in: a spread of losses per block (fixed by its tokens), noise shifted
    by `noise_shift` nats for the `current` model, by `reference_shift` for rho's reference."""
    noise_rows = {row.tobytes() for row in pool.blocks(np.arange(pool.n_real, pool.n_base))}

    def scores(model, tokens, mask, batch_size, device, with_entropy=True):
        shift = noise_shift if model is current else reference_shift
        rows = np.asarray(tokens, dtype=np.int64)
        base = np.array([zlib.crc32(row.tobytes()) / 2**32 * 2.0 for row in rows])
        is_noise = np.array([row.tobytes() in noise_rows for row in rows])
        loss = 3.0 + base + shift * is_noise
        return {"loss": loss, "entropy": loss}

    return scores


def noise_of_rounds(model, pool, strategy, tmp_path, rounds=3) -> tuple[int, int, float]:
    """(noise chosen, chosen, uniform expectation) over `rounds` scored rounds."""
    k = n = 0
    expected = 0.0
    for r in range(rounds):
        cfg = cfg_for(
            strategy,
            warmup_rounds=0,
            blocks_per_round=120,
            candidates_per_round=360,
            exploration=0.0,
            rho_reference_steps=2,
        )
        state = SelectionState()
        result = run_round(model, pool, cfg, state, r, tmp_path / strategy, "cpu")
        summary = result.summary
        k += int((pool.noise_kind(result.chosen_ids) != "").sum())
        n += len(result.chosen_ids)
        expected += expected_uniform(summary) * len(result.chosen_ids)
    return k, n, expected / n


@pytest.mark.parametrize("shift", [1.5, -1.5])
def test_loss_follows_a_scorer_that_makes_noise_hard_or_easy(cache, tokenizer, trained, tmp_path, monkeypatch, shift):
    _, model = trained
    pool = noisy(cache, tokenizer)
    monkeypatch.setattr(selection, "masked_scores", fake_scorer(pool, model, shift))
    k, n, uniform = noise_of_rounds(model, pool, "loss", tmp_path)
    lo = n * uniform - 4 * math.sqrt(n * uniform * (1 - uniform))
    hi = n * uniform + 4 * math.sqrt(n * uniform * (1 - uniform))
    if shift > 0:  # noise looks hard: `loss` chooses more of it than a uniform choice would
        assert k > hi, (k, n, uniform)
    else:  # noise looks easy: less
        assert k < lo, (k, n, uniform)


def test_rho_ignores_noise_that_is_hard_for_its_reference_too(cache, tokenizer, trained, tmp_path, monkeypatch):
    """Noise as hard for the reference model as for the current one scores about 0 under rho:
    it keeps about the uniform share while `loss` chases the noise."""
    _, model = trained
    pool = noisy(cache, tokenizer)
    monkeypatch.setattr(selection, "masked_scores", fake_scorer(pool, model, 1.5, reference_shift=1.5))
    k, n, uniform = noise_of_rounds(model, pool, "rho", tmp_path)
    assert binomial_ok(k, n, uniform), (k, n, uniform)
    monkeypatch.setattr(selection, "masked_scores", fake_scorer(pool, model, 1.5, reference_shift=0.0))
    k_loss, _, _ = noise_of_rounds(model, pool, "rho", tmp_path / "b")
    assert k_loss > k  # a reference that finds noise easy makes rho chase it like loss


# ------------------------------------------------------------------ nothing changes at 0


@pytest.mark.parametrize("strategy", ["loss", "rho", "random"])
def test_zero_noise_share_writes_the_same_round_files_as_a_pool_without_noise(
    cache, tokenizer, trained, tmp_path, strategy
):
    _, model = trained
    train, valid = corpus()
    pools = {
        "plain": MemoryPool(tokenizer, dict(sorted(train.items())), valid),  # no noise support at all
        "zero": noisy(cache, tokenizer, share=0.0),
    }
    for name, pool in pools.items():
        state = SelectionState()
        for r in range(2):
            run_round(model, pool, cfg_for(strategy), state, r, tmp_path / name, "cpu")
    for r in range(2):
        a = (tmp_path / "plain" / "selection" / f"round-{r:03d}.jsonl").read_bytes()
        assert a == (tmp_path / "zero" / "selection" / f"round-{r:03d}.jsonl").read_bytes()
        assert b"noise" not in a


# ------------------------------------------------------------------ a training run


def test_training_with_noise_reports_it_and_resumes_bit_identically(tmp_path):
    from tests.support.pretrain import assert_same_run, build_inputs, metric_records, run_inprocess, run_subprocess

    inputs = build_inputs(tmp_path / "inputs")
    out = tmp_path / "noisy"
    run_inprocess(*inputs, out, f"data.noise_share={SHARE}")
    events = metric_records(out, "selection")
    assert len(events) == 3
    for event in events:
        s = event["summary"]
        assert 0.0 < s["noise_share"] < 1.0 and set(s["noise_share_by_kind"]) == set(noise.KINDS)
        assert s["noise_candidate_share"] == pytest.approx(SHARE, abs=0.12)
    assert json.loads((out / "run.json").read_text())["settings"]["data.noise_share"] == SHARE
    killed = tmp_path / "killed"
    proc = run_subprocess(*inputs, killed, f"data.noise_share={SHARE}", env={"AFRO_TEST_SIGNAL_AT_STEP": "7:KILL"})
    assert proc.returncode == -9, proc.stderr
    run_inprocess(*inputs, killed, f"data.noise_share={SHARE}")  # the same command again
    assert_same_run(out, killed)
    # without noise: the setting at 0 is the run without it, run.json included
    run_inprocess(*inputs, tmp_path / "none")
    run_inprocess(*inputs, tmp_path / "zero", "data.noise_share=0")
    assert_same_run(tmp_path / "none", tmp_path / "zero")
    assert (tmp_path / "none" / "run.json").read_bytes() == (tmp_path / "zero" / "run.json").read_bytes()
    assert "noise" not in (tmp_path / "none" / "metrics.jsonl").read_text()
