"""Exact validation (fixed all-<mask> positions) and the per-language unigram baseline."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain import train, validation
from pretrain.masking import IGNORE_INDEX, special_table
from tests.support.pretrain import build_inputs, run_args


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("validation"), langs=("amh", "yor"), n=200)


@pytest.fixture(scope="module")
def tokenizer(inputs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(inputs[1]))


def random_blocks(tokenizer, n: int, length: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(5, len(tokenizer), size=(n, length))
    blocks[:, 0], blocks[:, -1] = tokenizer.bos_token_id, tokenizer.eos_token_id
    blocks[-1, -6:] = tokenizer.pad_token_id  # a padded tail, as the last valid block has
    return blocks


def build(tokenizer, blocks, lang="yor", probability=0.15, targets=100):
    chars = validation.piece_chars(tokenizer)
    return validation.build_validation_set(
        blocks,
        special_table(tokenizer),
        tokenizer.mask_token_id,
        tokenizer.pad_token_id,
        chars,
        lang,
        probability,
        targets,
    )


def test_every_target_is_masked_and_no_position_is_scored_twice(tokenizer):
    blocks = random_blocks(tokenizer, 6)
    vset = build(tokenizer, blocks, targets=10**6)  # more than there is: every position once
    targets = vset.labels != IGNORE_INDEX
    assert (vset.inputs[targets] == tokenizer.mask_token_id).all()  # no target is visible
    assert (vset.inputs[~targets] != tokenizer.mask_token_id).all()  # and nothing else is masked
    # Rows are (block, view) pairs: map each row back to its block and count uses per position.
    uses = Counter()
    for row_inputs, row_labels in zip(vset.inputs, vset.labels):
        block = next(
            i
            for i, b in enumerate(blocks)
            if torch.equal(torch.where(row_labels != IGNORE_INDEX, row_labels, row_inputs), torch.from_numpy(b))
        )
        uses.update((block, int(p)) for p in torch.nonzero(row_labels != IGNORE_INDEX).ravel())
    maskable = ~special_table(tokenizer)[torch.from_numpy(blocks)]
    assert max(uses.values()) == 1
    assert len(uses) == int(maskable.sum()) == vset.targets and not vset.complete


def test_positions_depend_on_the_language_only_and_stop_at_the_target_count(tokenizer):
    blocks = random_blocks(tokenizer, 40)
    a, b = build(tokenizer, blocks, targets=100), build(tokenizer, blocks, targets=100)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert a.complete and 100 <= a.targets < 100 + blocks.shape[1]  # stops after the row that reaches it
    other = build(tokenizer, blocks, lang="amh", targets=100)
    assert not torch.equal(other.labels, a.labels)
    # About mask_probability of a row's maskable positions are targets (view 0 comes first).
    originals = torch.where(a.labels != IGNORE_INDEX, a.labels, a.inputs)
    rate = (a.labels != IGNORE_INDEX).sum() / (~special_table(tokenizer)[originals]).sum()
    assert 0.05 < float(rate) < 0.3


def test_piece_chars_counts_spaces_and_each_byte_spelled_character_once(tokenizer):
    chars = validation.piece_chars(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    for i, piece in enumerate(pieces):
        if i in tokenizer.all_special_ids:
            assert chars[i] == 0
        elif piece.startswith("<0x"):
            assert chars[i] == (0 if 0x80 <= int(piece[3:5], 16) < 0xC0 else 1), piece
        else:
            assert chars[i] == len(piece), piece  # "▁" stands for one space
    # A character spelled in three UTF-8 bytes counts once.
    byte_ids = tokenizer.convert_tokens_to_ids([f"<0x{b:02X}>" for b in "ẹ".encode()])
    if tokenizer.unk_token_id not in byte_ids:
        assert chars[byte_ids].sum() == 1


def test_unigram_baseline_is_the_smoothed_frequency_of_the_train_pieces(tokenizer):
    train_blocks = random_blocks(tokenizer, 30, seed=1)
    special = special_table(tokenizer).numpy()
    log_probs = validation.unigram_log_probs(train_blocks, special)
    counts = Counter(int(t) for t in train_blocks.ravel() if not special[t])
    total = sum(counts.values()) + validation.UNIGRAM_SMOOTHING * int((~special).sum())
    piece = counts.most_common(1)[0][0]
    assert math.isclose(log_probs[piece], math.log((counts[piece] + validation.UNIGRAM_SMOOTHING) / total))
    assert np.isneginf(log_probs[special]).all()
    assert math.isclose(np.exp(log_probs[~special]).sum(), 1.0)
    vset = build(tokenizer, random_blocks(tokenizer, 10, seed=2), targets=50)
    base = validation.unigram_baseline(vset, log_probs)
    target_ids = vset.labels[vset.labels != IGNORE_INDEX].numpy()
    nats = -sum(log_probs[t] for t in target_ids)
    assert math.isclose(base["loss"], nats / len(target_ids), abs_tol=1e-6)
    assert math.isclose(base["bpc"], nats / math.log(2) / vset.chars, abs_tol=1e-6)


def test_bigram_baseline_is_witten_bell_over_the_visible_left_piece(tokenizer):
    special = special_table(tokenizer).numpy()
    rng = np.random.default_rng(3)
    # Text with strong local structure: each piece is followed by one of two successors.
    successors = rng.integers(5, len(tokenizer) - 1, size=(len(tokenizer), 2))
    blocks = np.zeros((40, 32), dtype=np.int64)
    for row in blocks:
        row[0], piece = tokenizer.bos_token_id, int(rng.integers(5, len(tokenizer) - 1))
        for t in range(1, 32):
            row[t], piece = piece, int(successors[piece, rng.integers(2)])
    train_blocks, valid_blocks = blocks[:30], blocks[30:]
    log_probs = validation.unigram_log_probs(train_blocks, special)
    vset = build(tokenizer, valid_blocks, targets=60)
    base = validation.bigram_baseline(vset, train_blocks, log_probs, tokenizer.mask_token_id)
    pairs = Counter(zip(train_blocks[:, :-1].ravel().tolist(), train_blocks[:, 1:].ravel().tolist()))
    lefts = Counter(a for a, _ in pairs.elements())
    types = Counter(a for a, _ in pairs)
    nats = []
    for r, c in zip(*np.nonzero((vset.labels != IGNORE_INDEX).numpy())):
        left, target = int(vset.inputs[r, c - 1]), int(vset.labels[r, c])
        unigram = math.exp(log_probs[target])
        if left == tokenizer.mask_token_id or not lefts[left]:
            nats.append(-math.log(unigram))  # the model sees no left piece there: the unigram alone
        else:
            nats.append(-math.log((pairs[left, target] + types[left] * unigram) / (lefts[left] + types[left])))
    assert math.isclose(base["loss"], sum(nats) / len(nats), abs_tol=1e-5)
    unigram = validation.unigram_baseline(vset, log_probs)["loss"]
    assert base["loss"] < unigram - 1.0  # two successors a piece: the left piece is worth several nats


def test_compare_counts_languages_below_the_baseline():
    evals = {"yor": {"loss": 5.0}, "hau": {"loss": 6.5}, "amh": {"loss": None}}
    baseline = {"yor": {"loss": 5.5}, "hau": {"loss": 6.0}, "amh": {"loss": 7.0}}
    vs = validation.compare(evals, baseline)
    assert vs == {"below": 1, "langs": 2, "mean_margin": 0.0, "worst": "hau"}


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_runs_with_different_seeds_score_the_same_targets_against_the_same_baseline(inputs, tmp_path):
    settings = ("train.max_steps=4", "train.eval_every=4", "eval.targets_per_lang=300")
    runs = []
    for seed in (0, 7):
        out = tmp_path / f"seed{seed}"
        args = train.parse_args(run_args(*inputs, out, *settings, f"train.seed={seed}"))
        train.run(train.load_run_config(args))
        runs.append(metrics(out))
    baselines = [[r for r in run if r["event"] == "baseline"] for run in runs]
    assert len(baselines[0]) == 1 and baselines[0] == baselines[1]
    evals = [[r for r in run if r["event"] == "eval"] for run in runs]
    first = [e[0]["langs"] for e in evals]
    for lang, base in baselines[0][0]["langs"].items():
        # This valid split is smaller than 300 targets: every valid position is scored once.
        assert base["targets"] == first[0][lang]["targets"] > 150 and base["loss"] > 0 and base["bpc"] > 0, lang
    assert {k: v["targets"] for k, v in first[0].items()} == {k: v["targets"] for k, v in first[1].items()}
    assert first[0] != first[1]  # different initial weights: different losses on the same targets
    summary = json.loads((tmp_path / "seed0" / "manifest.json").read_text())["summary"]
    assert summary["vs_unigram"]["langs"] == 2 and summary["vs_bigram"]["langs"] == 2
    assert all(b["bigram"]["loss"] > 0 for b in baselines[0][0]["langs"].values())
    assert set(summary["valid_loss"]["yor"]) >= {"first", "last", "unigram", "bpc", "unigram_bpc"}
