"""The `afrolm` strategy's generator: the model rewrites the end of training sentences.

After AfroLM (Dossou et al. 2022): mask the last ~15% of the words of a prompt sentence and
let the MLM fill them in; sentences that pass corpus-style filters join the training pool.
Here the masked words keep their token count, all prompts of a batch are filled together,
left to right (each step fills the leftmost open `<mask>` of every sentence, so later words
see the earlier fills), greedily or by sampling from a local seeded `torch.Generator`.

Words are SentencePiece words: a piece starting with `▁` opens a word. `generate_round` is a
selection round's part (pretrain/strategies/afrolm.py): generated blocks up to a budget.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import regex
import torch
from torch import nn

from pretrain.scoring import _masked_logits, eval_mode, special_token_ids, unwrap
from pretrain.scripts import main_script, script_counts

WORD_START = "\u2581"  # SentencePiece's `▁`


@dataclass
class Prompt:
    """One tokenized prompt: its ids (with `<s>`…`</s>`) and the positions to fill."""

    text: str
    ids: list[int]
    fill: list[int]


def word_starts(pieces: Sequence[str]) -> list[int]:
    """Indices of the pieces that open a word (the first piece always does)."""
    return [i for i, piece in enumerate(pieces) if i == 0 or piece.startswith(WORD_START)]


def last_words_positions(pieces: Sequence[str], fill_fraction: float) -> list[int]:
    """Piece indices of the last max(1, round(fill_fraction * words)) words; at least one
    word is always left as context. Empty when there are fewer than two words."""
    starts = word_starts(pieces)
    if len(starts) < 2:
        return []
    n_fill = min(max(1, round(fill_fraction * len(starts))), len(starts) - 1)
    return list(range(starts[-n_fill], len(pieces)))


def make_prompts(
    tokenizer, texts: Sequence[str], fill_fraction: float, max_tokens: int, min_words: int
) -> tuple[list[Prompt], Counter]:
    """Tokenize `texts` into prompts of at most `max_tokens` ids (a longer text keeps its
    first words, counted as `prompt_truncated`); returns them and counts by reason of the
    texts skipped (`prompt_too_short`) or truncated."""
    counts: Counter = Counter()
    prompts = []
    for text in texts:
        words = text.split()
        enc = tokenizer(text, return_special_tokens_mask=True)  # `<s> … </s>` by the template
        if len(enc["input_ids"]) > max_tokens:
            counts["prompt_truncated"] += 1
            while len(words) > 1 and len(enc["input_ids"]) > max_tokens:
                words = words[: -max(1, len(words) // 8)]
                text = " ".join(words)
                enc = tokenizer(text, return_special_tokens_mask=True)
        inner = [i for i, special in enumerate(enc["special_tokens_mask"]) if not special]
        pieces = tokenizer.convert_ids_to_tokens([enc["input_ids"][i] for i in inner])
        if len(word_starts(pieces)) < min_words or len(enc["input_ids"]) > max_tokens:
            counts["prompt_too_short"] += 1
            continue
        fill = [inner[i] for i in last_words_positions(pieces, fill_fraction)]
        prompts.append(Prompt(text=text, ids=list(enc["input_ids"]), fill=fill))
    return prompts, counts


def _pick(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """Token per row: argmax when temperature is 0, else a seeded top-k sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float().cpu() / temperature  # CPU: the generator is a CPU generator
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)


def fill_prompts(
    model: nn.Module,
    prompts: Sequence[Prompt],
    generator: torch.Generator,
    batch_size: int,
    device: torch.device | str,
    temperature: float = 0.0,
    top_k: int = 0,
) -> list[list[int]]:
    """Fill each prompt's `fill` positions left to right; returns the completed ids."""
    model = unwrap(model)
    special = special_token_ids(model)
    banned = torch.tensor(sorted({v for v in special.values() if v is not None}))
    done: list[list[int]] = []
    with eval_mode(model):
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            width = max(len(p.ids) for p in batch)
            ids = torch.full((len(batch), width), special["pad"], dtype=torch.long)
            open_ = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, prompt in enumerate(batch):
                ids[row, : len(prompt.ids)] = torch.tensor(prompt.ids)
                open_[row, prompt.fill] = True
            ids = ids.masked_fill(open_, special["mask"]).to(device)
            attention = (ids != special["pad"]).long()
            while open_.any():
                # leftmost open position of every row that still has one
                rows = open_.any(dim=1).nonzero(as_tuple=True)[0]
                cols = open_[rows].float().argmax(dim=1)
                here = torch.zeros_like(open_)
                here[rows, cols] = True
                logits = _masked_logits(model, ids, attention, here.to(device))  # (rows, V)
                logits[:, banned.to(logits.device)] = float("-inf")
                tokens = _pick(logits, temperature, top_k, generator).to(device)
                ids[rows.to(device), cols.to(device)] = tokens
                open_[rows, cols] = False
            done.extend(ids[row, : len(p.ids)].tolist() for row, p in enumerate(batch))
    return done


MAX_WORD_RUN = 2  # a word repeated 3 times in a row ("dey dey dey") is a degenerate fill
MAX_CHAR_RUN = 4  # so is one character 5 times in a row ("ẹẹẹẹẹ")
MAX_DISTINCT_SHARE = 0.5  # a fill of 3+ words, at most half of them distinct ("na dey na dey")


def repetitive(text: str, filled: str) -> bool:
    """Whether a generated sentence is a repetition fill: a word 3 times in a row anywhere in it
    (the fill may continue the prompt's last word), a character 5 times in a row in the fill, or
    a fill of 3+ words at most half of which are distinct."""
    words = [w.casefold().strip(".,;:!?\"'()") for w in text.split()]
    run = 1
    for before, word in zip(words, words[1:]):
        run = run + 1 if word and word == before else 1
        if run > MAX_WORD_RUN:
            return True
    if regex.search(rf"(.)\1{{{MAX_CHAR_RUN},}}", filled):
        return True
    new = [w.casefold() for w in filled.split()]
    return len(new) >= 3 and len(set(new)) <= MAX_DISTINCT_SHARE * len(new)


def check_generated(prompt: str, text: str, filled: str, min_words: int, min_script_share: float = 0.9) -> str | None:
    """Corpus-style filters for one generated sentence; returns the drop reason or None.

    `filled` is the decoded generated part. A small local stand-in for the corpus stage's
    filters: non-empty, long enough, different from its prompt, valid text, not a repetition
    fill, and the new words written in the prompt's main script.
    """
    if not text.strip():
        return "empty"
    if len(text.split()) < min_words:
        return "too_short"
    if " ".join(text.split()) == " ".join(prompt.split()):
        return "same_as_prompt"
    if "\ufffd" in text or any(unicodedata.category(c) in ("Cc", "Co", "Cs", "Cn") for c in text if c not in "\t\n"):
        return "invalid_characters"
    if repetitive(text, filled):
        return "repetitive"
    counts = script_counts(filled)
    if not counts:
        return "no_letters"
    script = main_script(prompt)
    if script is None or counts[script] / sum(counts.values()) < min_script_share:
        return "script"
    return None


def generate_sentences(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    fill_fraction: float,
    generator: torch.Generator,
    batch_size: int,
    device: torch.device | str,
    max_tokens: int,
    min_words: int,
    temperature: float = 0.0,
    top_k: int = 0,
) -> tuple[list[str], Counter, int]:
    """Prompts -> filled, filtered, deduplicated sentences; counts of every drop by reason;
    the number of prompts truncated to fit."""
    prompts, counts = make_prompts(tokenizer, texts, fill_fraction, max_tokens, min_words)
    dropped = Counter({k: v for k, v in counts.items() if k != "prompt_truncated"})
    outputs = fill_prompts(model, prompts, generator, batch_size, device, temperature, top_k)
    kept: list[str] = []
    seen: set[str] = set()
    for prompt, ids in zip(prompts, outputs):
        text = unicodedata.normalize("NFC", tokenizer.decode(ids, skip_special_tokens=True)).strip()
        filled = tokenizer.decode([ids[i] for i in prompt.fill], skip_special_tokens=True)
        reason = check_generated(prompt.text, text, filled, min_words)
        if reason is None and text in seen:
            reason = "duplicate"
        if reason:
            dropped[reason] += 1
            continue
        seen.add(text)
        kept.append(text)
    return kept, dropped, counts["prompt_truncated"]


def generate_round(
    model: nn.Module,
    pool,
    cfg,
    budget: dict[str, int],
    prompts: dict[str, int],
    rng: np.random.Generator,
    gen: torch.Generator,
    device,
) -> tuple[dict[str, np.ndarray], dict]:
    """Per language: up to `prompts[lang]` training-pool prompts (never validation) are filled in
    chunks until the kept sentences fill `budget[lang]` blocks; they go to `pool.add_generated`.
    Returns the new block ids per language (at most the budget are used this round) and counts."""
    if getattr(pool, "tokenizer", None) is None:
        raise TypeError(
            "selection.strategy=afrolm needs the pool's `tokenizer` attribute "
            "(pretrain/pool.py BlockPool protocol); this pool has none"
        )
    config = unwrap(model).config
    # XLM-R positions start after pad_token_id, so max_position_embeddings - 2 tokens fit.
    max_tokens = min(pool.block_len, config.max_position_embeddings - 2)
    chunk = max(8, cfg.score_batch_size)
    new_ids = {}
    stats = {"prompts": 0, "truncated": 0, "kept": 0, "blocks": 0, "budget": sum(budget.values()), "dropped": {}}
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
            part, dropped, truncated = generate_sentences(
                model,
                pool.tokenizer,
                texts[start : start + chunk],
                cfg.afrolm_fill_fraction,
                gen,
                cfg.score_batch_size,
                device,
                max_tokens,
                cfg.afrolm_min_words,
                cfg.afrolm_temperature,
                cfg.afrolm_top_k,
            )
            stats["prompts"] += len(texts[start : start + chunk])
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
