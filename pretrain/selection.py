"""Self-active selection (issue 4, item 4): every `select_every` optimizer steps the model
chooses the blocks its next round trains on. A pure component: the training loop calls
`run_round` and trains on the ids it returns; nothing here touches the optimizer, the
global RNG or the data order outside the returned ids.

One round:
1. quotas: per-language shares of candidates and of chosen blocks by temperature sampling,
   quota_i ∝ n_i^alpha (XLM-R / AfriBERTa language sampling), see `language_quotas`;
2. candidates: drawn uniformly without replacement within each language;
3. scores: the current model in inference mode under a fixed, round-seeded mask
   (`pretrain.scoring`): mean MLM loss, mean entropy, or loss reduction since a reference;
4. choice within each language: a junk guard keeps out candidates that are mostly bytes,
   repetitive or in another script (from their tokens) or whose score is far above the
   language's norm (robust z-score); an `exploration` share is drawn uniformly, the rest by
   Gumbel-top-k = sampling without replacement with P ∝ exp(score / gumbel_temperature);
5. `selection/round-NNN.jsonl`: one line per candidate, then a summary line.

The `afrolm` strategy instead lets the model rewrite the end of training sentences
(`pretrain.generate`), adds the ones that pass the filters to the pool and trains on them
plus random blocks. See docs/selection.md.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.io import atomic_write
from pretrain import generate
from pretrain.pool import BlockPool
from pretrain.scoring import (
    block_stats, masked_scores, scoring_mask, special_token_ids, token_table, unwrap,
)

log = logging.getLogger(__name__)

STRATEGIES = ("random", "loss", "entropy", "reducible", "afrolm")
# Independent random streams of one round: np.random.default_rng([seed, round, STREAM]).
CANDIDATES, CHOICE, ORDER, PROMPTS, MASK, SAMPLING = range(6)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this = its standard deviation


@dataclass
class SelectionConfig:
    """Self-active selection settings (`selection.*`); the comments are the --help text."""

    strategy: str = "loss"  # random | loss | entropy | reducible | afrolm
    select_every: int = 50  # optimizer steps per selection round
    blocks_per_round: int = 256  # blocks the next round trains on
    candidates_per_round: int = 1024  # blocks drawn and scored per round (>= blocks_per_round)
    alpha: float = 0.3  # language temperature: quota_i ∝ n_i^alpha (1 proportional, 0 uniform)
    exploration: float = 0.1  # share of each language's quota drawn uniformly at random
    gumbel_temperature: float = 1.0  # P(chosen) ∝ exp(score / this); lower is greedier
    junk_zscore: float = 3.0  # robust z (median/MAD per language) above which a block is junk
    junk_min_distinct: float = 0.1  # junk if distinct tokens < this share of its tokens
    junk_max_byte_share: float = 0.3  # junk if byte-fallback/<unk> tokens > this share
    junk_min_script_share: float = 0.5  # junk if letters in its language's main script < this
    mask_prob: float = 0.15  # share of ordinary tokens masked (all as <mask>) when scoring
    score_batch_size: int = 32  # blocks per forward pass when scoring and generating
    seed: int = 0  # seeds candidates, masks, choice, order, prompts (with the round index)
    warmup_rounds: int = 1  # first rounds chosen at random (an untrained model's scores are noise)
    afrolm_prompts_per_round: int = 64  # afrolm: training sentences rewritten per round
    afrolm_fill_fraction: float = 0.15  # afrolm: share of a prompt's last words filled in
    afrolm_min_words: int = 4  # afrolm: minimum words of a prompt and of a kept sentence
    afrolm_temperature: float = 0.0  # afrolm: 0 = greedy top-1 (as AfroLM); > 0 samples
    afrolm_top_k: int = 50  # afrolm: sample among the k likeliest tokens (0 = all)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"selection.{name} = {getattr(self, name)!r}: {what}")

        need(self.strategy in STRATEGIES, "strategy", f"must be one of {', '.join(STRATEGIES)}")
        for name in ("select_every", "blocks_per_round", "score_batch_size",
                     "afrolm_prompts_per_round"):
            need(getattr(self, name) >= 1, name, "must be at least 1")
        need(self.candidates_per_round >= self.blocks_per_round, "candidates_per_round",
             f"must be at least blocks_per_round ({self.blocks_per_round})")
        need(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        need(0.0 <= self.exploration <= 1.0, "exploration", "must be in [0, 1]")
        need(self.gumbel_temperature > 0, "gumbel_temperature", "must be > 0")
        need(self.junk_zscore > 0, "junk_zscore", "must be > 0 (.inf turns the guard off)")
        for name in ("junk_min_distinct", "junk_max_byte_share", "junk_min_script_share"):
            need(0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        need(0.0 < self.mask_prob < 1.0, "mask_prob", "must be in (0, 1)")
        need(self.warmup_rounds >= 0, "warmup_rounds", "must be >= 0")
        need(0.0 < self.afrolm_fill_fraction < 1.0, "afrolm_fill_fraction", "must be in (0, 1)")
        need(self.afrolm_min_words >= 2, "afrolm_min_words", "must be at least 2")
        need(self.afrolm_temperature >= 0, "afrolm_temperature", "must be >= 0")
        need(self.afrolm_top_k >= 0, "afrolm_top_k", "must be >= 0")


@dataclass
class SelectionState:
    """What selection carries from round to round; saved in every checkpoint."""

    # `reducible`: CPU copy of the weights taken at the start of the previous round.
    reference: dict[str, torch.Tensor] | None = None
    reference_round: int | None = None
    # Rounds each block id was chosen in (index = block id; int32 tensors stay small in a
    # checkpoint where a dict of millions of ids would not).
    times_chosen: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int32))
    last_chosen: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    generated_ids: dict[str, list[int]] = field(default_factory=dict)  # afrolm blocks by lang
    rounds_done: int = 0  # rounds run so far (last round index + 1)

    def state_dict(self) -> dict:
        """Tensors, ints, lists and dicts only: `torch.load(weights_only=True)` reads it."""
        return {"version": 1, **{f.name: copy.copy(getattr(self, f.name))
                                 for f in dataclasses.fields(self)}}

    @classmethod
    def from_state_dict(cls, data: dict) -> "SelectionState":
        if data.get("version") != 1:
            raise ValueError(f"selection state: unknown version {data.get('version')!r}")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass
class RoundResult:
    chosen_ids: np.ndarray      # int64, in training order
    summary: dict               # the round file's summary line (deterministic: no timings)
    scoring_seconds: float      # wall time spent scoring / generating this round


# ---------------------------------------------------------------------------- quotas


def language_quotas(pool_sizes: dict[str, int], total: int, alpha: float,
                    caps: dict[str, int] | None = None) -> dict[str, int]:
    """Split `total` over languages with shares ∝ n_i^alpha (n_i = pool size).

    Water-filling: a language whose share exceeds its cap (`caps`, default the pool size)
    gets its cap and the rest is shared again among the others. Largest-remainder rounding
    (ties: larger weight, then name), so the quotas sum to `total`. Only when `total`
    exceeds the sum of all caps (unavoidable) does a language get more than its cap: the
    excess is spread ∝ n_i^alpha and shows up as that language's shortfall.
    """
    caps = dict(pool_sizes if caps is None else caps)
    langs = sorted(lang for lang, n in pool_sizes.items() if n > 0)
    if total < 0:
        raise ValueError(f"language_quotas: total = {total} must be >= 0")
    if not langs:
        return {lang: 0 for lang in pool_sizes}
    weight = {lang: float(pool_sizes[lang]) ** alpha for lang in langs}
    capacity = sum(caps.get(lang, 0) for lang in langs)
    if total > capacity:  # unavoidable: everyone full, the excess spread by weight
        excess = _largest_remainder({l: weight[l] for l in langs}, total - capacity)
        return {lang: caps.get(lang, 0) + excess.get(lang, 0) for lang in pool_sizes}
    exact = _water_fill(weight, {l: caps.get(l, 0) for l in langs}, total)
    quotas = {lang: min(math.floor(exact[lang]), caps.get(lang, 0)) for lang in langs}
    left = total - sum(quotas.values())
    order = sorted((l for l in langs if quotas[l] < caps.get(l, 0)),
                   key=lambda l: (-(exact[l] - quotas[l]), -weight[l], l))
    for lang in order[:left]:
        quotas[lang] += 1
    return {lang: quotas.get(lang, 0) for lang in pool_sizes}


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


def gumbel_top_k(scores: np.ndarray, k: int, temperature: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Indices of k items drawn without replacement with P ∝ exp(score / temperature):
    the k largest of score / temperature + Gumbel(0, 1) noise (Gumbel-top-k; Vieira 2014,
    Kool et al. 2019). Never a fixed top-k: every item keeps a chance."""
    keys = scores / temperature + rng.gumbel(size=len(scores))
    return np.argsort(-keys, kind="stable")[:k]


def choose_in_language(scores: np.ndarray | None, quota: int, cfg: SelectionConfig,
                       rng: np.random.Generator, junk: np.ndarray | None = None,
                       first: np.ndarray | None = None
                       ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Choose `quota` of one language's candidates; returns (positions chosen, a reason per
    candidate, robust z, junk kind per candidate: "" when clean).

    `junk` (required without `scores`): kinds found without the model ("repetitive",
    "bytes", "script"); with `scores` the guard adds "unscorable" (nothing to mask) and
    "score" (z > junk_zscore). Junk is chosen only when nothing clean is left ("junk_fill",
    least extreme first).
    `first`: candidates taken before any other (afrolm's generated blocks, "generated").
    With scores: an `exploration` share uniformly ("explore"), the rest by Gumbel-top-k
    ("gumbel"). Without scores: uniformly ("random").
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
        take(pool[gumbel_top_k(scores[pool], k, cfg.gumbel_temperature, rng)], "gumbel")
    rest = np.flatnonzero(clean & ~taken)
    size = min(quota - int(taken.sum()), len(rest))
    take(rng.choice(rest, size=size, replace=False) if size else [],
         "explore" if scores is not None else "random")
    if taken.sum() < quota:  # only junk left: least extreme first (random order without z)
        dirty = rng.permutation(np.flatnonzero(~clean & ~taken))
        dirty = dirty[np.argsort(np.nan_to_num(z[dirty], nan=np.inf), kind="stable")]
        take(dirty[: quota - int(taken.sum())], "junk_fill")
    order = {"generated": 0, "gumbel": 1, "explore": 2, "random": 2, "junk_fill": 3}
    chosen = sorted(np.flatnonzero(taken), key=lambda i: (order[reasons[i]], i))
    return np.array(chosen, dtype=np.int64), reasons, z, junk


def content_junk(stats: dict[str, np.ndarray], langs: list[str], cfg: SelectionConfig
                 ) -> np.ndarray:
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


def draw_candidates(pool: BlockPool, langs: list[str], counts: dict[str, int],
                    rng: np.random.Generator, exclude: list[np.ndarray] = ()
                    ) -> dict[str, np.ndarray]:
    """`counts[lang]` ids per language, uniformly without replacement, sorted; ids in
    `exclude` are never drawn."""
    out = {}
    banned = np.concatenate([np.zeros(0, np.int64), *exclude]).astype(np.int64)
    for lang in langs:
        ids = np.asarray(pool.ids(lang), dtype=np.int64)
        if len(banned):
            ids = ids[~np.isin(ids, banned)]
        take = min(counts.get(lang, 0), len(ids))
        out[lang] = np.sort(rng.choice(ids, size=take, replace=False)) if take else ids[:0]
    return out


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


INSPECT_CHUNK = 4096  # candidate blocks read, checked and scored at a time (bounded memory)


def inspect_candidates(model: nn.Module, pool: BlockPool, ids: np.ndarray, langs: list[str],
                       cfg: SelectionConfig, state: SelectionState, round_index: int,
                       device, scored: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Junk kinds found from the tokens (all strategies but `random`) and, when `scored`,
    loss / entropy (and ref_loss for `reducible`) per candidate plus the strategy's `score`.
    One pass over the candidates, `INSPECT_CHUNK` blocks at a time."""
    kinds = np.array([""] * len(ids), dtype=object)
    table = _token_table(pool) if cfg.strategy != "random" else None
    if not len(ids) or (table is None and not scored):
        return kinds, {}
    special = [v for v in special_token_ids(model).values() if v is not None]
    mask_gen = round_torch_generator(cfg, round_index, MASK)
    reference = None
    if scored and cfg.strategy == "reducible":
        reference = copy.deepcopy(unwrap(model))
        reference.load_state_dict(state.reference)
    stats, parts = [], []
    for start in range(0, len(ids), INSPECT_CHUNK):
        blocks = np.asarray(pool.blocks(ids[start:start + INSPECT_CHUNK]), dtype=np.int64)
        if table is not None:
            stats.append(block_stats(blocks, table, special))
        if scored:
            tokens = torch.as_tensor(blocks)
            mask = scoring_mask(tokens, cfg.mask_prob, mask_gen, special)
            out = masked_scores(model, tokens, mask, cfg.score_batch_size, device)
            if reference is not None:
                # Same positions for both models: the difference measures the models.
                out["ref_loss"] = masked_scores(reference, tokens, mask, cfg.score_batch_size,
                                                device)["loss"]
            parts.append(out)
    del reference
    if stats:
        kinds = content_junk({k: np.concatenate([s[k] for s in stats]) for k in stats[0]},
                             langs, cfg)
    scores = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "masked"} \
        if parts else {}
    if scores:
        # `reducible`: loss reduction since the reference, high where the model is learning
        # (learnable), about 0 where it is not (noise). See docs/selection.md on the sign.
        scores["score"] = (scores["ref_loss"] - scores["loss"] if cfg.strategy == "reducible"
                           else scores[cfg.strategy])
    return kinds, scores


def _token_table(pool: BlockPool):
    tokenizer = getattr(pool, "tokenizer", None)
    if tokenizer is None:
        log.warning("selection: the pool has no `tokenizer` (pretrain/pool.py), so the junk "
                    "guard checks scores only, not repetition, bytes or script")
        return None
    return token_table(tokenizer)


def _mode(cfg: SelectionConfig, state: SelectionState, round_index: int) -> str:
    if cfg.strategy == "random":
        return "random"
    if round_index < cfg.warmup_rounds:
        return "warmup_random"
    if cfg.strategy == "reducible" and state.reference is None:
        return "no_reference_random"
    return "generate" if cfg.strategy == "afrolm" else "scored"


def run_round(model: nn.Module, pool: BlockPool, cfg: SelectionConfig, state: SelectionState,
              round_index: int, out_dir: str | Path | None, device) -> RoundResult:
    """Choose the blocks of round `round_index`; write its round file under `out_dir`
    (None: write nothing, e.g. on non-zero ranks); update `state`. Deterministic in
    (cfg.seed, round_index, model weights, pool)."""
    started = time.perf_counter()
    mode = _mode(cfg, state, round_index)
    generated, gen_stats = {}, {}
    if mode == "generate":
        generated, gen_stats = _afrolm_generate(model, pool, cfg, round_index, device)
    langs = pool.languages
    pool_sizes = {lang: len(pool.ids(lang)) for lang in langs}
    candidates = _candidates(pool, cfg, state, round_index, pool_sizes, generated)
    n_cand = {lang: len(ids) for lang, ids in candidates.items()}
    # `target`: the temperature share, not capped by the pool, so a language that cannot
    # fill it shows a shortfall; `quotas`: what is chosen, capped by the candidates (the
    # others make up the difference while they can).
    target = language_quotas(pool_sizes, cfg.blocks_per_round, cfg.alpha,
                             caps=dict.fromkeys(langs, cfg.blocks_per_round))
    quotas = language_quotas(pool_sizes, cfg.blocks_per_round, cfg.alpha, caps=n_cand)

    all_ids = np.concatenate([candidates[lang] for lang in langs] or [np.zeros(0, np.int64)])
    cand_langs = [lang for lang in langs for _ in range(n_cand[lang])]
    junk, scores = inspect_candidates(model, pool, all_ids, cand_langs, cfg, state, round_index,
                                      device, scored=mode == "scored")
    if cfg.strategy == "reducible":
        state.reference, state.reference_round = snapshot(model), round_index
    scoring_seconds = time.perf_counter() - started

    rng = round_rng(cfg, round_index, CHOICE)
    records, per_lang, chosen_all = [], {}, []
    offset = 0
    for lang in langs:
        ids = candidates[lang]
        part = slice(offset, offset + len(ids))
        offset += len(ids)
        lang_scores = {k: v[part] for k, v in scores.items()}
        is_gen = np.isin(ids, generated.get(lang, ids[:0]))
        chosen, reasons, z, kinds = choose_in_language(
            lang_scores.get("score"), quotas[lang], cfg, rng,
            junk=junk[part], first=is_gen if generated else None)
        chosen_all.append(ids[chosen])
        records += _candidate_records(round_index, lang, ids, lang_scores, z, reasons, kinds,
                                      is_gen)
        per_lang[lang] = _lang_summary(pool_sizes[lang], len(ids), target[lang], quotas[lang],
                                       reasons, kinds, lang_scores.get("score"), chosen)
    chosen_ids = np.concatenate(chosen_all or [np.zeros(0, np.int64)])
    assert len(np.unique(chosen_ids)) == len(chosen_ids), "duplicate block within a round"
    summary = _summary(cfg, round_index, mode, per_lang, len(chosen_ids), gen_stats)
    summary["chosen_before"] = _chosen_before(state, chosen_ids)
    if summary["shortfall"] or any(s["shortfall"] for s in per_lang.values()):
        log.warning("selection round %d: %d of blocks_per_round=%d chosen (%d blocks short); "
                    "languages short of their share: %s", round_index, len(chosen_ids),
                    cfg.blocks_per_round, summary["shortfall"],
                    {l: s["shortfall"] for l, s in per_lang.items() if s["shortfall"]})
    if out_dir is not None:
        write_round_file(Path(out_dir) / "selection" / f"round-{round_index:03d}.jsonl",
                         records, summary)
    _update_state(state, chosen_ids, generated, round_index)
    order = round_rng(cfg, round_index, ORDER).permutation(chosen_ids)
    return RoundResult(chosen_ids=order.astype(np.int64), summary=summary,
                       scoring_seconds=scoring_seconds)


def _candidates(pool: BlockPool, cfg: SelectionConfig, state: SelectionState, round_index: int,
                pool_sizes: dict[str, int], generated: dict[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
    """This round's generated blocks, then ids drawn ∝ quotas from the rest of the pool.

    `reducible` leaves out the blocks trained on in the previous round: their loss fell
    because they were trained on (memorised), which says nothing about learnability."""
    exclude = [state.last_chosen.numpy()] if cfg.strategy == "reducible" else []
    exclude += [np.asarray(ids, dtype=np.int64) for ids in generated.values()]
    counts = language_quotas(pool_sizes, cfg.candidates_per_round, cfg.alpha)
    drawn = draw_candidates(pool, pool.languages, counts,
                            round_rng(cfg, round_index, CANDIDATES), exclude)
    empty = np.zeros(0, np.int64)
    return {lang: np.concatenate([generated.get(lang, empty), ids]).astype(np.int64)
            for lang, ids in drawn.items()}


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _candidate_records(round_index, lang, ids, scores, z, reasons, kinds, is_gen) -> list[dict]:
    out = []
    for i, block_id in enumerate(ids.tolist()):
        rec = {"type": "candidate", "round": round_index, "block_id": block_id, "lang": lang,
               "score": _clean(scores["score"][i]) if "score" in scores else None,
               "z": _clean(z[i]), "chosen": reasons[i] not in ("not_chosen", "junk_guard"),
               "reason": reasons[i], "junk": kinds[i] or None, "generated": bool(is_gen[i])}
        for key in ("loss", "entropy", "ref_loss"):
            if key in scores:
                rec[key] = _clean(scores[key][i])
        out.append(rec)
    return out


def _lang_summary(pool_size, n_cand, target, quota, reasons, kinds, score, chosen) -> dict:
    junk = Counter(k for k in kinds if k)
    out = {"pool": pool_size, "candidates": n_cand, "target": target, "quota": quota,
           "chosen": len(chosen), "shortfall": max(0, target - len(chosen)),
           "junk_flagged": sum(junk.values()), "junk_chosen": reasons.count("junk_fill"),
           "junk": dict(sorted(junk.items())),
           "reasons": dict(sorted(Counter(reasons).items()))}
    if score is not None:
        finite = np.isfinite(score)
        picked = np.zeros(len(score), dtype=bool)
        picked[chosen] = True
        out["mean_score_candidates"] = _clean(score[finite].mean()) if finite.any() else None
        out["mean_score_chosen"] = (_clean(score[finite & picked].mean())
                                    if (finite & picked).any() else None)
    return out


def _summary(cfg, round_index, mode, per_lang, n_chosen, gen_stats) -> dict:
    def total(key):
        return sum(s[key] for s in per_lang.values())

    junk: Counter = Counter()
    for s in per_lang.values():
        junk.update(s["junk"])
    summary = {"type": "summary", "round": round_index, "strategy": cfg.strategy, "mode": mode,
               "requested": cfg.blocks_per_round, "chosen": n_chosen,
               "candidates": total("candidates"),
               "shortfall": max(0, cfg.blocks_per_round - n_chosen),
               "junk_flagged": total("junk_flagged"), "junk_chosen": total("junk_chosen"),
               "junk": dict(sorted(junk.items())),
               "explore": sum(s["reasons"].get("explore", 0) for s in per_lang.values()),
               "languages": per_lang}
    if gen_stats:
        summary["afrolm"] = gen_stats
    return summary


def write_round_file(path: Path, records: list[dict], summary: dict) -> None:
    with atomic_write(path) as handle:
        for rec in [*records, summary]:
            handle.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")


def _chosen_before(state: SelectionState, chosen: np.ndarray) -> int:
    """How many of this round's blocks an earlier round chose too."""
    known = chosen[chosen < len(state.times_chosen)]
    return int((state.times_chosen[torch.as_tensor(known, dtype=torch.long)] > 0).sum())


def _update_state(state: SelectionState, chosen: np.ndarray, generated: dict,
                  round_index: int) -> None:
    counts = state.times_chosen
    if len(chosen) and chosen.max() >= len(counts):
        counts = torch.cat([counts, torch.zeros(int(chosen.max()) + 1 - len(counts),
                                                dtype=torch.int32)])
    counts[torch.as_tensor(chosen, dtype=torch.long)] += 1
    state.times_chosen = counts
    state.last_chosen = torch.as_tensor(np.sort(chosen), dtype=torch.int64)
    for lang, ids in generated.items():
        state.generated_ids.setdefault(lang, []).extend(int(i) for i in ids)
    state.rounds_done = round_index + 1


def _afrolm_generate(model: nn.Module, pool: BlockPool, cfg: SelectionConfig,
                     round_index: int, device) -> tuple[dict[str, np.ndarray], dict]:
    """Prompts from the training pool (never validation) -> filled sentences -> filters ->
    `pool.add_generated`. Returns the new block ids per language and counts."""
    langs = pool.languages
    pool_sizes = {lang: len(pool.ids(lang)) for lang in langs}
    per_lang = language_quotas(pool_sizes, cfg.afrolm_prompts_per_round, cfg.alpha)
    if getattr(pool, "tokenizer", None) is None:
        raise TypeError("selection.strategy=afrolm needs the pool's `tokenizer` attribute "
                        "(pretrain/pool.py BlockPool protocol); this pool has none")
    rng = round_rng(cfg, round_index, PROMPTS)
    gen = round_torch_generator(cfg, round_index, SAMPLING)
    config = unwrap(model).config
    # XLM-R positions start after pad_token_id, so max_position_embeddings - 2 tokens fit.
    max_tokens = min(pool.block_len, config.max_position_embeddings - 2)
    new_ids, stats = {}, {"prompts": 0, "truncated": 0, "kept": 0, "blocks": 0, "dropped": {}}
    for lang in langs:
        texts = pool.sample_sentences(lang, per_lang[lang], rng) if per_lang[lang] else []
        kept, dropped, truncated = generate.generate_sentences(
            model, pool.tokenizer, texts, cfg.afrolm_fill_fraction, gen, cfg.score_batch_size,
            device, max_tokens, cfg.afrolm_min_words, cfg.afrolm_temperature, cfg.afrolm_top_k)
        ids = np.asarray(pool.add_generated(lang, kept) if kept else [], dtype=np.int64)
        new_ids[lang] = ids
        stats["prompts"] += len(texts)
        stats["truncated"] += truncated
        stats["kept"] += len(kept)
        stats["blocks"] += len(ids)
        for reason, n in dropped.items():
            stats["dropped"][reason] = stats["dropped"].get(reason, 0) + n
    stats["dropped"] = dict(sorted(stats["dropped"].items()))
    return new_ids, stats
