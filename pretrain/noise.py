"""Noise blocks: a positive control for selection strategies (`data.noise_share`).

With `data.noise_share = s` each language's training pool gets `round(n * s / (1 - s))` extra
blocks (n = its training blocks), so that noise is about `s` of the pool, in three kinds of
(near) equal parts:
- "shuffled": one of the language's own training blocks with its ordinary tokens permuted (the
  special tokens, `<s>` and each `</s>`, stay where they were): the same pieces without order;
- "foreign": a training block of another pool language under this language's label (none when
  the pool has one language: the other two kinds share its part);
- "unigram": `<s>`, then pieces drawn i.i.d. from the language's unigram piece distribution
  (the piece counts of its training blocks, special tokens left out).
A selection strategy that works should choose less noise than `random`, which keeps about the
noise's share of the clean candidates (see docs/pretrain.md, "Noise blocks").

Noise is a pure function of the block cache, the pool's languages and the share: every draw
comes from a stream seeded by a fixed constant, the language's name and the kind, so a run, its
resumption and every arm and seed of a study see the same noise blocks, and nothing about them
is checkpointed.
"""

from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np

KINDS = ("shuffled", "foreign", "unigram")
NOISE_SEED = 0x6E6F6973  # fixed: noise never depends on train.seed or selection.seed
SLICE = 65536  # training blocks counted at a time (the cache is memory-mapped)


def noise_count(n_real: int, share: float) -> int:
    """Noise blocks added to a language of `n_real` training blocks: `share` of the pool they make."""
    if share <= 0 or n_real <= 0:
        return 0
    return int(round(n_real * share / (1.0 - share)))


def kind_counts(n: int, kinds: Sequence[str]) -> dict[str, int]:
    """`n` split over `kinds` in equal parts, the remainder to the first kinds."""
    base, extra = divmod(n, len(kinds))
    return {kind: base + (i < extra) for i, kind in enumerate(kinds)}


def _rng(lang: str, kind: str) -> np.random.Generator:
    return np.random.default_rng([NOISE_SEED, zlib.crc32(lang.encode("utf-8")), KINDS.index(kind)])


def _pick(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` block indices of `n`, without replacement while there are enough."""
    return np.sort(rng.choice(n, size=size, replace=size > n)) if size else np.zeros(0, np.int64)


def shuffle_tokens(blocks: np.ndarray, special: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's ordinary tokens (not in `special`) permuted among their own positions."""
    out = np.array(blocks, copy=True)
    if not out.size:
        return out
    length = out.shape[1]
    ordinary = ~np.isin(out, special)
    keys = np.where(ordinary, rng.random(out.shape), np.inf)  # specials sort last
    values = np.take_along_axis(out, np.argsort(keys, axis=1, kind="stable"), axis=1)
    slots = np.argsort(np.where(ordinary, 0, 1) * length + np.arange(length), axis=1, kind="stable")
    first = np.arange(length) < ordinary.sum(axis=1, keepdims=True)  # the first m of each row
    rows = np.repeat(np.arange(len(out)), first.sum(axis=1))
    out[rows, slots[first]] = values[first]
    return out


def unigram_probs(blocks: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Piece probabilities of `blocks` (counts, special tokens left out)."""
    counts = np.zeros(0, dtype=np.float64)
    for start in range(0, len(blocks), SLICE):
        part = np.bincount(np.asarray(blocks[start : start + SLICE]).ravel())
        if len(part) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(part) - len(counts))])
        counts[: len(part)] += part
    counts[special[special < len(counts)]] = 0.0
    return counts / counts.sum() if counts.sum() else counts


def build_noise(
    lang: str, train: Mapping[str, np.ndarray], share: float, bos: int, special: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Noise blocks of `lang` and the kind of each (an index into KINDS), noise of each kind
    in one run of rows in KINDS order. `train`: the training blocks of every pool language."""
    own = train[lang]
    length = own.shape[1]
    special = np.asarray(sorted(set(int(s) for s in special) | {bos}), dtype=np.int64)
    others = sorted(other for other in train if other != lang and len(train[other]))
    kinds = [k for k in KINDS if k != "foreign" or others]
    counts = kind_counts(noise_count(len(own), share), kinds)
    parts, codes = [], []
    for kind in kinds:
        n, rng = counts[kind], _rng(lang, kind)
        if kind == "shuffled":
            blocks = shuffle_tokens(np.asarray(own[_pick(len(own), n, rng)]), special, rng)
        elif kind == "foreign":
            source = rng.integers(len(others), size=n)
            blocks = np.empty((n, length), dtype=np.int32)
            for i, other in enumerate(others):
                rows = np.flatnonzero(source == i)
                blocks[rows] = train[other][_pick(len(train[other]), len(rows), rng)]
        else:
            probs = unigram_probs(own, special)
            blocks = np.full((n, length), bos, dtype=np.int32)
            if n and probs.sum():
                blocks[:, 1:] = rng.choice(len(probs), size=(n, length - 1), p=probs)
        parts.append(np.asarray(blocks, dtype=np.int32))
        codes.append(np.full(n, KINDS.index(kind), dtype=np.uint8))
    if not parts:
        return np.zeros((0, length), dtype=np.int32), np.zeros(0, dtype=np.uint8)
    return np.concatenate(parts), np.concatenate(codes)
