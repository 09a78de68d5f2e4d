"""Self-active selection: every `select_every` optimizer steps the model chooses the blocks its
next round trains on. A pure component: the training loop calls `run_round` and trains on the
ids it returns; nothing here touches the optimizer, the global RNG or the data order outside
the returned ids.

One round, the same frame for every strategy (`pretrain/strategies/`, one module each):
1. held-out slice: at the first round, `holdout_share` of each language's training blocks is set
   aside for good (the irreducible-loss model of `rho` and `mix` trains on it); it is never a
   candidate in any arm, so every arm draws from the same pool;
2. candidates: `candidates` blocks split over languages by temperature, quota_i ∝ n_i^alpha
   (XLM-R / AfriBERTa), drawn uniformly without replacement within each language from a stream
   seeded by (seed, round) alone: the same candidates for every strategy;
3. junk guard from the tokens, for every arm: blocks that are mostly bytes, repetitive or in
   another script;
4. measures the strategy needs (`pretrain.scoring`, fixed per-block masks): MLM loss, entropy,
   the irreducible-loss model's cached loss; the strategy turns them into a score per block
   (loss, entropy, rho) or into language weights (mix); afrolm generates blocks instead;
5. choice within each language: scored arms also drop blocks whose score is far above the
   language's norm (robust z); an `exploration` share is drawn uniformly, the rest by
   Gumbel-top-k (sampling without replacement, P ∝ exp(score / gumbel_temperature)) or top-k;
   unscored arms draw uniformly;
6. `selection/round-NNN.jsonl`: one line per candidate, then a summary line (with noise blocks
   in the pool, `data.noise_share`: each candidate's noise kind and the share of noise chosen).

See docs/pretrain.md ("Selection strategies") and docs/selection.md.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.config import ConfigError
from pretrain import generate, irreducible, strategies
from pretrain.config import SelectionConfig
from pretrain.noise import KINDS as NOISE_KINDS
from pretrain.pool import BlockPool
from pretrain.runfiles import round_path, write_round
from pretrain.scoring import (
    block_mask,
    block_stats,
    masked_scores,
    special_token_ids,
    token_table,
)
from pretrain.strategies import STRATEGIES, afrolm

log = logging.getLogger(__name__)

# Independent random streams: np.random.default_rng([seed, round, STREAM]).
CANDIDATES, CHOICE, ORDER, PROMPTS, MASK, SAMPLING, HOLDOUT, REFERENCE = range(8)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this = its standard deviation
STATE_VERSION = 2


@dataclass
class SelectionState:
    """What selection carries from round to round; saved in every checkpoint."""

    holdout: torch.Tensor | None = None  # held-out block ids (int64), drawn at the first round
    # rho/mix: the irreducible-loss model's CPU weights and its loss per block id (NaN: not yet).
    reference: dict[str, torch.Tensor] | None = None
    irreducible: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float32))
    mix_weights: dict[str, float] = field(default_factory=dict)  # mix: last round's language weights
    # Rounds each block id was chosen in (index = block id; int32 tensors stay small in a
    # checkpoint where a dict of millions of ids would not).
    times_chosen: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int32))
    last_chosen: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    generated_ids: dict[str, list[int]] = field(default_factory=dict)  # afrolm blocks by lang
    rounds_done: int = 0  # rounds run so far (last round index + 1)

    def state_dict(self) -> dict:
        """Tensors, ints, lists and dicts only: `torch.load(weights_only=True)` reads it."""
        return {
            "version": STATE_VERSION,
            **{f.name: copy.copy(getattr(self, f.name)) for f in dataclasses.fields(self)},
        }

    @classmethod
    def from_state_dict(cls, data: dict) -> "SelectionState":
        if data.get("version") not in (1, STATE_VERSION):
            raise ValueError(f"selection state: unknown version {data.get('version')!r}")
        if data["version"] == 1:  # before the held-out slice: the old `reducible` fields go
            data = {k: v for k, v in data.items() if k not in ("reference", "reference_round")}
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class RoundResult:
    chosen_ids: np.ndarray  # int64, in training order
    summary: dict  # the round file's summary line (deterministic: no timings)
    scoring_seconds: float  # wall time spent scoring / generating this round


# ---------------------------------------------------------------------------- quotas


def language_quotas(
    pool_sizes: dict[str, int], total: int, alpha: float, caps: dict[str, int] | None = None
) -> dict[str, int]:
    """Split `total` over languages with shares ∝ n_i^alpha (n_i = pool size); see
    `weighted_quotas` (caps default to the pool sizes)."""
    weight = {lang: float(n) ** alpha for lang, n in pool_sizes.items() if n > 0}
    return weighted_quotas(weight, total, dict(pool_sizes if caps is None else caps), pool_sizes)


def weighted_quotas(weight: dict[str, float], total: int, caps: dict[str, int], langs: dict | list) -> dict[str, int]:
    """Split `total` over the languages of `weight` with shares ∝ weight.

    Water-filling: a language whose share exceeds its cap gets its cap and the rest is shared
    again among the others. Largest-remainder rounding (ties: larger weight, then name), so
    the quotas sum to `total`. Only when `total` exceeds the sum of all caps (unavoidable) does
    a language get more than its cap: the excess is spread ∝ weight and shows up as that
    language's shortfall. Languages of `langs` without weight get 0.
    """
    names = sorted(lang for lang, w in weight.items() if w > 0)
    if total < 0:
        raise ValueError(f"language_quotas: total = {total} must be >= 0")
    if not names:
        return {lang: 0 for lang in langs}
    weight = {lang: weight[lang] for lang in names}
    capacity = sum(caps.get(lang, 0) for lang in names)
    if total > capacity:  # unavoidable: everyone full, the excess spread by weight
        excess = _largest_remainder(weight, total - capacity)
        return {lang: caps.get(lang, 0) + excess.get(lang, 0) if lang in weight else 0 for lang in langs}
    exact = _water_fill(weight, {l: caps.get(l, 0) for l in names}, total)
    quotas = {lang: min(math.floor(exact[lang]), caps.get(lang, 0)) for lang in names}
    left = total - sum(quotas.values())
    order = sorted(
        (l for l in names if quotas[l] < caps.get(l, 0)), key=lambda l: (-(exact[l] - quotas[l]), -weight[l], l)
    )
    for lang in order[:left]:
        quotas[lang] += 1
    return {lang: quotas.get(lang, 0) for lang in langs}


def kept_quotas(
    pool_sizes: dict[str, int],
    candidates: dict[str, int],
    cfg: "SelectionConfig",
    weights: dict[str, float] | None = None,
) -> dict[str, int]:
    """Blocks kept per language. By default the temperature shares of `blocks_per_round`, each at
    most ceil(kept share x its candidates), so a language whose pool caps its candidates still
    chooses among them. With `weights` (mix), shares ∝ weights, each at most its candidates."""
    if weights is None:
        share = cfg.blocks_per_round / max(1, sum(candidates.values()))
        caps = {lang: math.ceil(share * n) for lang, n in candidates.items()}
        weights = {lang: float(n) ** cfg.alpha for lang, n in pool_sizes.items() if n > 0}
    else:
        caps = dict(candidates)
    return weighted_quotas(weights, cfg.blocks_per_round, caps, pool_sizes)


def holdout_count(n: int, share: float) -> int:
    """Blocks of a language with `n` training blocks held out (at least one stays in the pool)."""
    return min(max(0, n - 1), round(share * n))


def check_pressure(
    cfg: "SelectionConfig", pool_sizes: dict[str, int], where: str, noise: dict[str, int] | None = None
) -> None:
    """At the start of a run: in every language the candidates fit in its pool (after the held-out
    slice) and fewer blocks are kept than drawn, else a ConfigError naming `where` (the preset),
    the language and the numbers. Without this a preset can ask for more than a pool holds and
    every strategy silently trains on the whole pool every round. `pool_sizes`: training blocks;
    `noise`: noise blocks per language (candidates too, never held out)."""
    noise = noise or {}
    sizes = {lang: n - holdout_count(n, cfg.holdout_share) + noise.get(lang, 0) for lang, n in pool_sizes.items()}
    total = sum(sizes.values())
    cand = language_quotas(sizes, cfg.candidates, cfg.alpha)
    kept = kept_quotas(sizes, cand, cfg)
    fix = (
        "lower selection.blocks_per_round or selection.candidates_per_round, or raise "
        "selection.kept_share (fewer candidates per kept block)"
    )
    for lang in sorted(sizes):
        if cand[lang] > sizes[lang]:
            raise ConfigError(
                f"{where}: language {lang} would draw {cand[lang]:,} candidates a round but its pool "
                f"holds {sizes[lang]:,} blocks (selection.candidates {cfg.candidates:,} against "
                f"{total:,} blocks in all languages, after holdout_share={cfg.holdout_share}); {fix}"
            )
    for lang in sorted(sizes):
        if cand[lang] and kept[lang] >= cand[lang]:
            raise ConfigError(
                f"{where}: language {lang} would keep {kept[lang]:,} of its {cand[lang]:,} candidates "
                f"a round (pool {sizes[lang]:,} blocks): nothing left to select; keep fewer than the "
                f"candidates: {fix}"
            )


def _water_fill(weight: dict[str, float], caps: dict[str, int], total: float) -> dict[str, float]:
    """Real-valued shares ∝ weight, none above its cap, summing to `total` (<= sum caps)."""
    share = {lang: 0.0 for lang in weight}
    free = set(weight)
    remaining = float(total)
    while free and remaining > 1e-9:
        norm = sum(weight[l] for l in free)
        over = {l for l in free if remaining * weight[l] / norm >= caps[l]}
        if not over:
            for lang in free:
                share[lang] = remaining * weight[lang] / norm
            break
        for lang in over:
            share[lang] = float(caps[lang])
            remaining -= caps[lang]
        free -= over
    return share


def _largest_remainder(weight: dict[str, float], total: int) -> dict[str, int]:
    norm = sum(weight.values())
    exact = {l: total * w / norm for l, w in weight.items()}
    out = {l: math.floor(x) for l, x in exact.items()}
    order = sorted(weight, key=lambda l: (-(exact[l] - out[l]), -weight[l], l))
    for lang in order[: total - sum(out.values())]:
        out[lang] += 1
    return out


# ---------------------------------------------------------------------------- choice


def robust_z(scores: np.ndarray) -> np.ndarray:
    """(s - median) / (1.4826 * MAD); NaN where s is NaN. When the MAD is 0 (half the
    scores tie), the mean absolute deviation (x 1.2533, also sigma for a normal) is used;
    when that is 0 too, every finite z is 0."""
    z = np.full(scores.shape, np.nan)
    ok = np.isfinite(scores)
    if not ok.any():
        return z
    values = scores[ok]
    median = np.median(values)
    spread = MAD_TO_SIGMA * np.median(np.abs(values - median))
    if spread == 0:
        spread = 1.2533 * np.mean(np.abs(values - median))
    z[ok] = 0.0 if spread == 0 else (values - median) / spread
    return z


def gumbel_top_k(scores: np.ndarray, k: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of k items drawn without replacement with P ∝ exp(score / temperature):
    the k largest of score / temperature + Gumbel(0, 1) noise (Gumbel-top-k; Vieira 2014,
    Kool et al. 2019). Never a fixed top-k: every item keeps a chance."""
    keys = scores / temperature + rng.gumbel(size=len(scores))
    return np.argsort(-keys, kind="stable")[:k]


def choose_in_language(
    scores: np.ndarray | None,
    quota: int,
    cfg: SelectionConfig,
    rng: np.random.Generator,
    junk: np.ndarray | None = None,
    first: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Choose `quota` of one language's candidates; returns (positions chosen, a reason per
    candidate, robust z, junk kind per candidate: "" when clean).

    `junk` (required without `scores`): kinds found without the model ("repetitive",
    "bytes", "script"); with `scores` the guard adds "unscorable" (nothing to mask) and
    "score" (z > junk_zscore). Junk is chosen only when nothing clean is left ("junk_fill",
    least extreme first).
    `first`: candidates taken before any other (afrolm's generated blocks, "generated").
    With scores: an `exploration` share uniformly ("explore"), the rest by Gumbel-top-k
    ("gumbel") or the highest scores ("topk", `cfg.sampling`). Without scores: uniformly
    ("random").
    """
    n = len(junk) if scores is None else len(scores)
    quota = min(quota, n)
    junk = np.array([""] * n if junk is None else junk, dtype=object)
    z = np.full(n, np.nan)
    if scores is not None:
        z = robust_z(scores)
        junk[(junk == "") & ~np.isfinite(scores)] = "unscorable"
        junk[(junk == "") & (z > cfg.junk_zscore)] = "score"
    clean = junk == ""
    reasons = ["junk_guard" if kind else "not_chosen" for kind in junk]
    taken = np.zeros(n, dtype=bool)

    def take(positions, reason):
        for i in positions:
            reasons[i], taken[i] = reason, True

    if first is not None:
        take(rng.permutation(np.flatnonzero(first & clean))[:quota], "generated")
    if scores is not None:
        n_explore = int(math.floor(cfg.exploration * quota + 0.5))
        pool = np.flatnonzero(clean & ~taken)
        k = max(0, quota - n_explore - int(taken.sum()))
        if cfg.sampling == "topk":  # highest scores first, ties by candidate order
            take(pool[np.argsort(-scores[pool], kind="stable")[:k]], "topk")
        else:
            take(pool[gumbel_top_k(scores[pool], k, cfg.gumbel_temperature, rng)], "gumbel")
    rest = np.flatnonzero(clean & ~taken)
    size = min(quota - int(taken.sum()), len(rest))
    take(rng.choice(rest, size=size, replace=False) if size else [], "explore" if scores is not None else "random")
    if taken.sum() < quota:  # only junk left: least extreme first (random order without z)
        dirty = rng.permutation(np.flatnonzero(~clean & ~taken))
        dirty = dirty[np.argsort(np.nan_to_num(z[dirty], nan=np.inf), kind="stable")]
        take(dirty[: quota - int(taken.sum())], "junk_fill")
    order = {"generated": 0, "gumbel": 1, "topk": 1, "explore": 2, "random": 2, "junk_fill": 3}
    chosen = sorted(np.flatnonzero(taken), key=lambda i: (order[reasons[i]], i))
    return np.array(chosen, dtype=np.int64), reasons, z, junk


def content_junk(stats: dict[str, np.ndarray], langs: list[str], cfg: SelectionConfig) -> np.ndarray:
    """Junk kind per block from `scoring.block_stats` ("" when clean): "bytes", then
    "repetitive", then "script" (under `junk_min_script_share` of its letter tokens in its
    language's main script, the commonest script among the language's candidates)."""
    langs_arr = np.asarray(langs, dtype=object)
    letters = stats["scripts"].sum(axis=1)
    in_main = np.zeros(len(langs), dtype=np.int64)
    for lang in dict.fromkeys(langs):
        rows = langs_arr == lang
        main = int(stats["scripts"][rows].sum(axis=0).argmax())
        in_main[rows] = stats["scripts"][rows, main]
    kinds = np.array([""] * len(langs), dtype=object)
    script = (letters > 0) & (in_main < cfg.junk_min_script_share * letters)
    kinds[script] = "script"
    kinds[stats["distinct"] < cfg.junk_min_distinct] = "repetitive"
    kinds[stats["bytes"] > cfg.junk_max_byte_share] = "bytes"
    return kinds


# ---------------------------------------------------------------------------- a round


def round_rng(cfg: SelectionConfig, round_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, round_index, stream])


def round_torch_generator(cfg: SelectionConfig, round_index: int, stream: int) -> torch.Generator:
    """A CPU generator of its own: scoring and generation never touch the global RNG."""
    seed = np.random.SeedSequence([cfg.seed, round_index, stream]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(seed) & (2**63 - 1))


def draw_candidates(
    pool: BlockPool, langs: list[str], counts: dict[str, int], rng: np.random.Generator, exclude: list[np.ndarray] = ()
) -> dict[str, np.ndarray]:
    """`counts[lang]` ids per language, uniformly without replacement, sorted; ids in
    `exclude` are never drawn."""
    out = {}
    for lang in langs:
        ids = base_ids(pool, lang, exclude)
        take = min(counts.get(lang, 0), len(ids))
        out[lang] = np.sort(rng.choice(ids, size=take, replace=False)) if take else ids[:0]
    return out


def base_ids(pool: BlockPool, lang: str, exclude: list[np.ndarray] = ()) -> np.ndarray:
    """The language's pool ids (sorted) without `exclude` (held-out and generated blocks)."""
    ids = np.asarray(pool.ids(lang), dtype=np.int64)
    banned = np.concatenate([np.zeros(0, np.int64), *exclude]).astype(np.int64)
    return ids[~np.isin(ids, banned)] if len(banned) else ids


def draw_holdout(pool: BlockPool, cfg: SelectionConfig) -> torch.Tensor:
    """`holdout_share` of each language's training blocks, seeded by `seed` alone (so every arm
    of a seed holds out the same blocks); generated and noise blocks are never held out."""
    rng = np.random.default_rng([cfg.seed, HOLDOUT])
    parts = [np.zeros(0, np.int64)]
    for lang in pool.languages:
        ids = np.asarray(pool.ids(lang), dtype=np.int64)
        kinds = noise_kinds(pool, ids)
        if kinds is not None:
            ids = ids[kinds == ""]
        parts.append(np.sort(rng.choice(ids, size=holdout_count(len(ids), cfg.holdout_share), replace=False)))
    return torch.as_tensor(np.concatenate(parts), dtype=torch.int64)


INSPECT_CHUNK = 4096  # candidate blocks read, checked and scored at a time (bounded memory)


def mask_seed(cfg: SelectionConfig) -> int:
    """Seed of the fixed per-block scoring masks: `seed` alone, never the round."""
    return int(np.random.SeedSequence([cfg.seed, MASK]).generate_state(1, np.uint64)[0])


def inspect_candidates(
    model: nn.Module,
    pool: BlockPool,
    ids: np.ndarray,
    langs: list[str],
    cfg: SelectionConfig,
    state: SelectionState,
    device,
    measures: tuple[str, ...],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Junk kinds found from the tokens (every strategy) and the `measures` per candidate
    (loss / entropy of the current model, ref_loss of the irreducible-loss model, cached).
    Every measure uses the block's fixed mask (`scoring.block_mask`). One pass over the
    candidates, `INSPECT_CHUNK` blocks at a time."""
    kinds = np.array([""] * len(ids), dtype=object)
    table = _token_table(pool)
    if not len(ids) or (table is None and not measures):
        return kinds, {}
    special = [v for v in special_token_ids(model).values() if v is not None]
    reference = None
    stats, parts = [], []
    for start in range(0, len(ids), INSPECT_CHUNK):
        chunk_ids = ids[start : start + INSPECT_CHUNK]
        blocks = np.asarray(pool.blocks(chunk_ids), dtype=np.int64)
        if table is not None:
            stats.append(block_stats(blocks, table, special))
        if not measures:
            continue
        tokens = torch.as_tensor(blocks)
        if cfg.score_tokens:  # a block's first tokens estimate its loss for a share of the cost
            tokens = tokens[:, : cfg.score_tokens]
        mask = block_mask(tokens, chunk_ids, cfg.mask_prob, mask_seed(cfg), special)
        out = {}
        if {"loss", "entropy"} & set(measures):
            out = masked_scores(model, tokens, mask, cfg.score_batch_size, device, with_entropy="entropy" in measures)
        if "ref_loss" in measures:
            ref = irreducible.cached(state.irreducible, chunk_ids)
            missing = np.flatnonzero(~np.isfinite(ref))
            if len(missing):
                if reference is None:
                    reference = irreducible.load_reference(model, state.reference, device)
                ref[missing] = masked_scores(
                    reference, tokens[missing], mask[missing], cfg.score_batch_size, device, with_entropy=False
                )["loss"]
                state.irreducible = irreducible.store(state.irreducible, chunk_ids[missing], ref[missing])
            out["ref_loss"] = ref
        parts.append({k: v for k, v in out.items() if k in measures})
    del reference
    if stats:
        kinds = content_junk({k: np.concatenate([s[k] for s in stats]) for k in stats[0]}, langs, cfg)
    values = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return kinds, values


def noise_kinds(pool: BlockPool, ids: np.ndarray) -> np.ndarray | None:
    """Each id's noise kind ("" for a training or generated block); None when the pool holds no
    noise (`data.noise_share` 0, or a pool without `noise_kind`)."""
    if not getattr(pool, "n_noise", 0):
        return None
    return np.asarray(pool.noise_kind(ids), dtype=object)


def _token_table(pool: BlockPool):
    tokenizer = getattr(pool, "tokenizer", None)
    if tokenizer is None:
        log.warning(
            "selection: the pool has no `tokenizer` (pretrain/pool.py), so the junk "
            "guard checks scores only, not repetition, bytes or script"
        )
        return None
    return token_table(tokenizer)


def _mode(strategy: strategies.Strategy, cfg: SelectionConfig, round_index: int) -> str:
    if not (strategy.measures or strategy.generates):
        return "random"
    if round_index < cfg.warmup_rounds:
        return "warmup_random"
    if strategy.generates:
        return "generate"
    return "mixture" if strategy.language_weights else "scored"


def _ensure_reference(model, pool, cfg: SelectionConfig, state: SelectionState, device) -> None:
    """rho/mix: train the irreducible-loss model once, on the held-out slice (round 0: from the
    model's initial weights)."""
    if state.reference is None:
        state.reference = irreducible.train_reference(
            model,
            pool,
            state.holdout.numpy(),
            cfg.rho_reference_steps,
            cfg.rho_reference_batch,
            cfg.rho_reference_lr,
            cfg.mask_prob,
            round_torch_generator(cfg, 0, REFERENCE),
            device,
            width=cfg.score_tokens,
        )


def run_round(
    model: nn.Module,
    pool: BlockPool,
    cfg: SelectionConfig,
    state: SelectionState,
    round_index: int,
    out_dir: str | Path | None,
    device,
) -> RoundResult:
    """Choose the blocks of round `round_index`; write its round file under `out_dir`
    (None: write nothing, e.g. on non-zero ranks); update `state`. Deterministic in
    (cfg.seed, round_index, model weights, pool)."""
    started = time.perf_counter()
    strategy = STRATEGIES[cfg.strategy]
    mode = _mode(strategy, cfg, round_index)
    if state.holdout is None:
        state.holdout = draw_holdout(pool, cfg)
    if "ref_loss" in strategy.measures:
        _ensure_reference(model, pool, cfg, state, device)
    langs = pool.languages
    exclude = [state.holdout.numpy(), *(np.asarray(v, np.int64) for v in state.generated_ids.values())]
    pool_sizes = {lang: len(base_ids(pool, lang, exclude)) for lang in langs}
    cand_counts = language_quotas(pool_sizes, cfg.candidates, cfg.alpha)
    candidates = draw_candidates(pool, langs, cand_counts, round_rng(cfg, round_index, CANDIDATES), exclude)
    n_cand = {lang: len(ids) for lang, ids in candidates.items()}
    # `target`: the temperature share, not capped by the pool, so a language that cannot
    # fill it shows a shortfall; `quotas`: what is chosen (see `kept_quotas`).
    target = language_quotas(
        pool_sizes, cfg.blocks_per_round, cfg.alpha, caps=dict.fromkeys(langs, cfg.blocks_per_round)
    )
    all_ids = np.concatenate([candidates[lang] for lang in langs] or [np.zeros(0, np.int64)])
    cand_langs = [lang for lang in langs for _ in range(n_cand[lang])]
    measures = strategy.measures if mode in ("scored", "mixture") else ()
    junk, values = inspect_candidates(model, pool, all_ids, cand_langs, cfg, state, device, measures)
    if mode == "scored" and strategy.score is not None:
        values["score"] = strategy.score(values)
    by_lang = _split(values, langs, n_cand)
    weights = None
    if mode == "mixture":
        previous = state.mix_weights or {l: float(n) ** cfg.alpha for l, n in pool_sizes.items() if n}
        weights = strategy.language_weights(previous, by_lang, cfg)
        state.mix_weights = weights
        # the mix's own shares are its target, so a shortfall means its candidates ran out
        target = weighted_quotas(weights, cfg.blocks_per_round, dict.fromkeys(langs, cfg.blocks_per_round), langs)
    quotas = kept_quotas(pool_sizes, n_cand, cfg, weights)
    generated, gen_stats = {}, {}
    if mode == "generate":
        budget = afrolm.block_budget(quotas, cfg.afrolm_generated_share)
        prompts = language_quotas(pool_sizes, cfg.afrolm_prompts_per_round, cfg.alpha)
        new, gen_stats = generate.generate_round(
            model,
            pool,
            cfg,
            budget,
            prompts,
            round_rng(cfg, round_index, PROMPTS),
            round_torch_generator(cfg, round_index, SAMPLING),
            device,
        )
        state_new = {lang: ids for lang, ids in new.items() if len(ids)}
        _remember_generated(state, state_new)
        generated = {lang: ids[: budget[lang]] for lang, ids in state_new.items()}
        gen_stats["used"] = int(sum(len(v) for v in generated.values()))
    scoring_seconds = time.perf_counter() - started

    rng = round_rng(cfg, round_index, CHOICE)
    records, per_lang, chosen_all = [], {}, []
    has_noise = bool(getattr(pool, "n_noise", 0))
    offset = 0
    for lang in langs:
        gen_ids = generated.get(lang, np.zeros(0, np.int64))
        ids = np.concatenate([gen_ids, candidates[lang]]).astype(np.int64)
        part = slice(offset, offset + n_cand[lang])
        offset += n_cand[lang]
        lang_values = {k: np.concatenate([np.full(len(gen_ids), np.nan), v]) for k, v in by_lang[lang].items()}
        lang_junk = np.concatenate([np.array([""] * len(gen_ids), dtype=object), junk[part]])
        is_gen = np.arange(len(ids)) < len(gen_ids)
        chosen, reasons, z, kinds = choose_in_language(
            lang_values.get("score"), quotas[lang], cfg, rng, junk=lang_junk, first=is_gen if len(gen_ids) else None
        )
        chosen_all.append(ids[chosen])
        lang_records = _candidate_records(round_index, lang, ids, lang_values, z, reasons, kinds, is_gen)
        per_lang[lang] = _lang_summary(
            pool_sizes[lang], len(ids), target[lang], quotas[lang], reasons, kinds, lang_values.get("score"), chosen
        )
        if has_noise:
            noise = noise_kinds(pool, ids)
            for rec, kind in zip(lang_records, noise):
                rec["noise"] = kind or None
            per_lang[lang].update(_noise_summary(_noise_counts(noise, kinds, chosen)))
        records += lang_records
        if weights is not None:
            per_lang[lang]["mix_weight"] = _clean(weights.get(lang, 0.0))
    chosen_ids = np.concatenate(chosen_all or [np.zeros(0, np.int64)])
    assert len(np.unique(chosen_ids)) == len(chosen_ids), "duplicate block within a round"
    summary = _summary(cfg, round_index, mode, per_lang, len(chosen_ids), gen_stats)
    if has_noise:
        summary.update(_noise_summary(_sum_counts([s["noise"] for s in per_lang.values()])))
    summary["chosen_before"] = _chosen_before(state, chosen_ids)
    if summary["shortfall"] or any(s["shortfall"] for s in per_lang.values()):
        log.warning(
            "selection round %d: %d of blocks_per_round=%d chosen (%d blocks short); "
            "languages short of their share: %s",
            round_index,
            len(chosen_ids),
            cfg.blocks_per_round,
            summary["shortfall"],
            {l: s["shortfall"] for l, s in per_lang.items() if s["shortfall"]},
        )
    if out_dir is not None:
        write_round(round_path(out_dir, round_index), records, summary)
    _update_state(state, chosen_ids, round_index)
    order = round_rng(cfg, round_index, ORDER).permutation(chosen_ids)
    return RoundResult(chosen_ids=order.astype(np.int64), summary=summary, scoring_seconds=scoring_seconds)


def _split(values: dict[str, np.ndarray], langs: list[str], counts: dict[str, int]) -> dict[str, dict[str, np.ndarray]]:
    """Per-candidate arrays cut into each language's part (candidates are language-major)."""
    out, offset = {}, 0
    for lang in langs:
        out[lang] = {k: v[offset : offset + counts[lang]] for k, v in values.items()}
        offset += counts[lang]
    return out


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _candidate_records(round_index, lang, ids, scores, z, reasons, kinds, is_gen) -> list[dict]:
    out = []
    for i, block_id in enumerate(ids.tolist()):
        rec = {
            "type": "candidate",
            "round": round_index,
            "block_id": block_id,
            "lang": lang,
            "score": _clean(scores["score"][i]) if "score" in scores else None,
            "z": _clean(z[i]),
            "chosen": reasons[i] not in ("not_chosen", "junk_guard"),
            "reason": reasons[i],
            "junk": kinds[i] or None,
            "generated": bool(is_gen[i]),
        }
        for key in ("loss", "entropy", "ref_loss"):
            if key in scores:
                rec[key] = _clean(scores[key][i])
        out.append(rec)
    return out


def _lang_summary(pool_size, n_cand, target, quota, reasons, kinds, score, chosen) -> dict:
    junk = Counter(k for k in kinds if k)
    out = {
        "pool": pool_size,
        "candidates": n_cand,
        "target": target,
        "quota": quota,
        "chosen": len(chosen),
        "shortfall": max(0, target - len(chosen)),
        "junk_flagged": sum(junk.values()),
        "junk_chosen": reasons.count("junk_fill"),
        "junk": dict(sorted(junk.items())),
        "reasons": dict(sorted(Counter(reasons).items())),
    }
    if score is not None:
        finite = np.isfinite(score)
        picked = np.zeros(len(score), dtype=bool)
        picked[chosen] = True
        out["mean_score_candidates"] = _clean(score[finite].mean()) if finite.any() else None
        out["mean_score_chosen"] = _clean(score[finite & picked].mean()) if (finite & picked).any() else None
    return out


def _noise_counts(noise: np.ndarray, junk: np.ndarray, chosen: np.ndarray) -> dict:
    """Candidates, clean candidates (passed by the junk guard) and chosen blocks: all of them
    ("all") and the noise of each kind."""
    picked = np.zeros(len(noise), dtype=bool)
    picked[chosen] = True
    clean = junk == ""
    out = {}
    for part, rows in (("candidates", np.ones(len(noise), dtype=bool)), ("clean", clean), ("chosen", picked)):
        out[part] = {"all": int(rows.sum()), **{k: int((rows & (noise == k)).sum()) for k in NOISE_KINDS}}
    return out


def _sum_counts(counts: list[dict]) -> dict:
    return {part: {k: sum(c[part][k] for c in counts) for k in counts[0][part]} for part in counts[0]}


def _noise_summary(counts: dict) -> dict:
    """The round's (or a language's) noise figures from `_noise_counts`: `noise_share` (of the
    chosen blocks), by kind, and the same share among the candidates and the clean candidates
    (what a uniform choice keeps)."""

    def share(part: str, kinds=NOISE_KINDS) -> float | None:
        n = counts[part]["all"]
        return round(sum(counts[part][k] for k in kinds) / n, 6) if n else None

    return {
        "noise": counts,
        "noise_share": share("chosen"),
        "noise_share_by_kind": {k: share("chosen", (k,)) for k in NOISE_KINDS},
        "noise_candidate_share": share("candidates"),
        "noise_clean_share": share("clean"),
    }


def _summary(cfg, round_index, mode, per_lang, n_chosen, gen_stats) -> dict:
    def total(key):
        return sum(s[key] for s in per_lang.values())

    junk: Counter = Counter()
    for s in per_lang.values():
        junk.update(s["junk"])
    summary = {
        "type": "summary",
        "round": round_index,
        "strategy": cfg.strategy,
        "mode": mode,
        "requested": cfg.blocks_per_round,
        "chosen": n_chosen,
        "candidates": total("candidates"),
        "shortfall": max(0, cfg.blocks_per_round - n_chosen),
        "junk_flagged": total("junk_flagged"),
        "junk_chosen": total("junk_chosen"),
        "junk": dict(sorted(junk.items())),
        "explore": sum(s["reasons"].get("explore", 0) for s in per_lang.values()),
        "languages": per_lang,
    }
    if gen_stats:
        summary["afrolm"] = gen_stats
    return summary


def _chosen_before(state: SelectionState, chosen: np.ndarray) -> int:
    """How many of this round's blocks an earlier round chose too."""
    known = chosen[chosen < len(state.times_chosen)]
    return int((state.times_chosen[torch.as_tensor(known, dtype=torch.long)] > 0).sum())


def _remember_generated(state: SelectionState, generated: dict) -> None:
    """Generated blocks are never candidates (every arm draws from the same pool)."""
    for lang, ids in generated.items():
        state.generated_ids.setdefault(lang, []).extend(int(i) for i in ids)


def _update_state(state: SelectionState, chosen: np.ndarray, round_index: int) -> None:
    counts = state.times_chosen
    if len(chosen) and chosen.max() >= len(counts):
        counts = torch.cat([counts, torch.zeros(int(chosen.max()) + 1 - len(counts), dtype=torch.int32)])
    counts[torch.as_tensor(chosen, dtype=torch.long)] += 1
    state.times_chosen = counts
    state.last_chosen = torch.as_tensor(np.sort(chosen), dtype=torch.int64)
    state.rounds_done = round_index + 1
