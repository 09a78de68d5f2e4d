"""Exact validation and its trivial baseline.

Validation targets are fixed positions of the corpus's valid split, every one replaced by
`<mask>` (no 80/10/10 corruption: no target is visible). Positions depend only on the language
name, so every run that shares a tokenizer and corpus (the block cache) scores exactly the same
targets, whatever its `train.seed`. Each block's maskable positions are dealt into
round(1 / mask_probability) disjoint views; views are used in turn (view 0 of every block, then
view 1, ...) until a language has `targets_per_lang` targets, so a small valid split still gives
many targets, each position at most once.

The baseline is a per-language unigram: piece frequencies of that language's training blocks
(same tokenizer), add-1/2 smoothed over the non-special vocabulary, scored on the same targets.
A second, stronger count baseline shows how much local context is worth: a per-language
left-neighbour bigram (Witten-Bell interpolated with that unigram), which sees the piece left of
each target in the same masked rows (a `<mask>` there leaves it with the unigram). A model that is
below the unigram but far above the bigram knows the language but hardly uses word order.
Bits per character (total nats / ln 2 / characters of the target pieces) compares runs whose
tokenizers differ.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pretrain.masking import IGNORE_INDEX, WORD_START

UNIGRAM_SMOOTHING = 0.5  # add-1/2 (Krichevsky-Trofimov): a standard, untuned estimator


@dataclass
class ValidationSet:
    """One language's fixed masked rows: every target position holds `<mask>` in `inputs`."""

    inputs: torch.Tensor  # (N, T) int64
    labels: torch.Tensor  # (N, T) int64, IGNORE_INDEX except at targets
    attention: torch.Tensor  # (N, T) bool, False at padding
    targets: int  # target positions in all rows
    chars: float  # characters of the target pieces (for bits per character)
    complete: bool  # False when the valid split ran out before `targets_per_lang`


def piece_chars(tokenizer) -> np.ndarray:
    """Float (vocab,): characters each piece stands for. `▁` is a space; of byte-fallback pieces
    only the first byte of a UTF-8 character counts, so a byte-spelled character counts once."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    chars = np.zeros(len(pieces), dtype=np.float64)
    for i, piece in enumerate(pieces):
        if i in special or piece is None:
            continue
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            byte = int(piece[3:5], 16)
            chars[i] = 0.0 if 0x80 <= byte < 0xC0 else 1.0  # continuation bytes add no character
        else:
            chars[i] = len(piece.replace(WORD_START, " "))
    return chars


def language_seed(lang: str) -> int:
    """Seed of a language's validation positions: its name only (never the run's seed)."""
    return zlib.crc32(f"validation/{lang}".encode())


def build_validation_set(
    blocks: np.ndarray,
    special: torch.Tensor,
    mask_id: int,
    pad_id: int,
    chars_table: np.ndarray,
    lang: str,
    mask_probability: float,
    targets_per_lang: int,
) -> ValidationSet:
    """Fixed masked rows of `lang` from its valid `blocks` (see the module doc)."""
    blocks_t = torch.from_numpy(np.asarray(blocks, dtype=np.int64))
    n_views = max(1, round(1.0 / mask_probability))
    gen = torch.Generator().manual_seed(language_seed(lang))
    view = torch.randint(n_views, blocks_t.shape, generator=gen)  # (B, T)
    maskable = ~special[blocks_t]
    rows_in, rows_lab, total = [], [], 0
    for v in range(n_views):
        chosen = maskable & (view == v)
        for i in range(len(blocks_t)):
            if total >= targets_per_lang:
                break
            row_chosen = chosen[i]
            n = int(row_chosen.sum())
            if n == 0:
                continue
            rows_in.append(torch.where(row_chosen, torch.full_like(blocks_t[i], mask_id), blocks_t[i]))
            rows_lab.append(torch.where(row_chosen, blocks_t[i], torch.full_like(blocks_t[i], IGNORE_INDEX)))
            total += n
    width = blocks_t.shape[1] if blocks_t.ndim == 2 else 0
    inputs = torch.stack(rows_in) if rows_in else torch.zeros((0, width), dtype=torch.int64)
    labels = torch.stack(rows_lab) if rows_lab else torch.zeros((0, width), dtype=torch.int64)
    target_ids = labels[labels != IGNORE_INDEX].numpy()
    return ValidationSet(
        inputs=inputs,
        labels=labels,
        attention=inputs != pad_id,
        targets=total,
        chars=float(chars_table[target_ids].sum()),
        complete=total >= targets_per_lang,
    )


def unigram_log_probs(
    train_blocks: np.ndarray, special: np.ndarray, smoothing: float = UNIGRAM_SMOOTHING
) -> np.ndarray:
    """Float64 (vocab,): log p of each non-special piece in `train_blocks`; -inf for specials."""
    vocab = len(special)
    counts = np.zeros(vocab, dtype=np.float64)
    for start in range(0, len(train_blocks), 65536):  # memory-mapped: count in slices
        counts += np.bincount(np.asarray(train_blocks[start : start + 65536]).ravel(), minlength=vocab)[:vocab]
    counts[special] = 0.0
    counts[~special] += smoothing
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def mixture_log_probs(per_lang: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """log of sum_l w_l p_l: the unigram of a mix that draws language l with weight w_l."""
    total = sum(weights[lang] for lang in per_lang)
    mix = sum(np.exp(per_lang[lang]) * (weights[lang] / total) for lang in per_lang)
    with np.errstate(divide="ignore"):
        return np.log(mix)


def unigram_baseline(valid: ValidationSet, log_probs: np.ndarray) -> dict:
    """The unigram's mean loss (nats) and bits per character on `valid`'s targets."""
    target_ids = valid.labels[valid.labels != IGNORE_INDEX].numpy()
    total = float(-log_probs[target_ids].sum())
    return {
        "loss": round(total / max(1, valid.targets), 6),
        "bpc": bits_per_char(total, valid.chars),
        "targets": valid.targets,
    }


def bigram_baseline(valid: ValidationSet, train_blocks: np.ndarray, log_probs: np.ndarray, mask_id: int) -> dict:
    """A left-neighbour bigram counted on `train_blocks`, Witten-Bell interpolated with the unigram
    `log_probs`, scored on `valid`'s targets from the inputs the model sees (mean loss, bits/char)."""
    vocab = len(log_probs)
    train = np.asarray(train_blocks, dtype=np.int64)
    pairs, pair_counts = np.unique((train[:, :-1] * vocab + train[:, 1:]).ravel(), return_counts=True)
    left_counts = np.bincount(pairs // vocab, weights=pair_counts, minlength=vocab)
    left_types = np.bincount(pairs // vocab, minlength=vocab).astype(np.float64)
    rows, cols = np.nonzero((valid.labels != IGNORE_INDEX).numpy())
    target_ids = valid.labels.numpy()[rows, cols]
    # No left neighbour (a target in the first column) counts as a <mask>: the unigram alone.
    left = np.where(cols > 0, valid.inputs.numpy()[rows, np.maximum(cols - 1, 0)], mask_id)
    found = np.minimum(np.searchsorted(pairs, left * vocab + target_ids), len(pairs) - 1)
    pair = np.where(pairs[found] == left * vocab + target_ids, pair_counts[found], 0)
    unigram = np.exp(log_probs[target_ids])
    seen = (left_counts[left] > 0) & (left != mask_id)
    denominator = np.where(seen, left_counts[left] + left_types[left], 1.0)
    prob = np.where(seen, (pair + left_types[left] * unigram) / denominator, unigram)
    total = float(-np.log(prob).sum())
    return {"loss": round(total / max(1, len(prob)), 6), "bpc": bits_per_char(total, valid.chars)}


def bits_per_char(total_nats: float, chars: float) -> float | None:
    return round(total_nats / math.log(2) / chars, 6) if chars > 0 else None


def compare(evals: dict, baseline: dict) -> dict:
    """How a validation result stands against the unigram: languages below it and mean margin."""
    margins = {
        lang: baseline[lang]["loss"] - r["loss"]
        for lang, r in evals.items()
        if r.get("loss") is not None and lang in baseline
    }
    return {
        "below": sum(m > 0 for m in margins.values()),
        "langs": len(margins),
        "mean_margin": round(float(np.mean(list(margins.values()))), 6) if margins else None,
        "worst": min(margins, key=margins.get) if margins else None,
    }


def load_train_blocks(cache: Path, lang: str) -> np.ndarray:
    return np.load(Path(cache) / lang / "train.npy", mmap_mode="r")
