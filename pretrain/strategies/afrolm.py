"""`afrolm`: AfroLM's generative loop (Dossou et al. 2022). The model rewrites the end of
training sentences (`pretrain.generate`); sentences that pass the filters (repetition included:
"dey dey dey" is dropped) are packed into new blocks, which take up to
`afrolm_generated_share` of the round's kept blocks, per language. They count in the round's
`blocks_per_round`, so afrolm trains on as many tokens as every other arm; the rest of its
blocks are drawn uniformly from the shared candidates (after the shared junk guard).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pretrain import generate
from pretrain.scoring import unwrap
from pretrain.strategies.base import Strategy

STRATEGY = Strategy(name="afrolm", summary="the model writes a share of its own blocks (AfroLM)",
                    generates=True)


def block_budget(quotas: dict[str, int], share: float) -> dict[str, int]:
    """Generated blocks allowed per language: floor(share x its kept quota)."""
    return {lang: math.floor(share * q) for lang, q in quotas.items()}


def generate_round(model: nn.Module, pool, cfg, budget: dict[str, int], prompts: dict[str, int],
                   rng: np.random.Generator, gen: torch.Generator, device
                   ) -> tuple[dict[str, np.ndarray], dict]:
    """Per language: up to `prompts[lang]` training-pool prompts (never validation) are filled in
    chunks until the kept sentences fill `budget[lang]` blocks; they go to `pool.add_generated`.
    Returns the new block ids per language (at most the budget are used this round) and counts."""
    if getattr(pool, "tokenizer", None) is None:
        raise TypeError("selection.strategy=afrolm needs the pool's `tokenizer` attribute "
                        "(pretrain/pool.py BlockPool protocol); this pool has none")
    config = unwrap(model).config
    # XLM-R positions start after pad_token_id, so max_position_embeddings - 2 tokens fit.
    max_tokens = min(pool.block_len, config.max_position_embeddings - 2)
    chunk = max(8, cfg.score_batch_size)
    new_ids = {}
    stats = {"prompts": 0, "truncated": 0, "kept": 0, "blocks": 0, "budget": sum(budget.values()),
             "dropped": {}}
    for lang in pool.languages:
        want_tokens = budget.get(lang, 0) * (pool.block_len - 1)  # `<s>` opens every block
        if not want_tokens or not prompts.get(lang):
            new_ids[lang] = np.zeros(0, np.int64)
            continue
        texts = pool.sample_sentences(lang, prompts[lang], rng)
        kept, tokens, seen = [], 0, set()
        for start in range(0, len(texts), chunk):
            if tokens >= want_tokens:
                break
            part, dropped, truncated = generate.generate_sentences(
                model, pool.tokenizer, texts[start:start + chunk], cfg.afrolm_fill_fraction, gen,
                cfg.score_batch_size, device, max_tokens, cfg.afrolm_min_words,
                cfg.afrolm_temperature, cfg.afrolm_top_k)
            stats["prompts"] += len(texts[start:start + chunk])
            stats["truncated"] += truncated
            for reason, n in dropped.items():
                stats["dropped"][reason] = stats["dropped"].get(reason, 0) + n
            for text in part:
                if text in seen:
                    stats["dropped"]["duplicate"] = stats["dropped"].get("duplicate", 0) + 1
                    continue
                seen.add(text)
                kept.append(text)
                tokens += len(pool.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1
        ids = np.asarray(pool.add_generated(lang, kept) if kept else [], dtype=np.int64)
        new_ids[lang] = ids
        stats["kept"] += len(kept)
        stats["blocks"] += len(ids)
    stats["dropped"] = dict(sorted(stats["dropped"].items()))
    return new_ids, stats
