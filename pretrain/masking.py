"""Dynamic MLM masking (Devlin et al. 2019; RoBERTa: a fresh mask every time a block is seen).

`probability` of the maskable tokens become prediction targets; of those `mask_fraction` are
replaced by `<mask>`, `random_fraction` by a random piece and the rest kept. With whole-word
masking the choice is made per word (a word starts at a piece beginning with U+2581 "▁",
SentencePiece's word-start marker) and all its pieces are masked together.
Randomness comes only from the `generator` argument, so masks are reproducible per step.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # label of positions that are not predicted
WORD_START = "\u2581"


def word_start_table(tokenizer) -> torch.Tensor:
    """Bool (vocab,): does this piece start a word? Special tokens count as word starts."""
    vocab = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(vocab)))
    special = set(tokenizer.all_special_ids)
    return torch.tensor(
        [i in special or (p or "").startswith(WORD_START) for i, p in enumerate(pieces)], dtype=torch.bool
    )


def special_table(tokenizer) -> torch.Tensor:
    """Bool (vocab,): ids never masked (<s>, </s>, <pad>, <unk>, <mask>)."""
    table = torch.zeros(len(tokenizer), dtype=torch.bool)
    table[list(tokenizer.all_special_ids)] = True
    return table


def mask_tokens(
    input_ids: torch.Tensor,  # (B, T) int64
    special: torch.Tensor,  # (V,) bool: never masked
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
    probability: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
    word_start: torch.Tensor | None = None,  # (V,) bool; given -> whole-word masking
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (masked inputs, labels); labels are IGNORE_INDEX except at chosen positions."""
    maskable = ~special[input_ids]  # (B, T)
    if word_start is None:
        chosen = torch.rand(input_ids.shape, generator=generator) < probability
    else:
        # word id of each token: running count of word starts; special tokens open a new word.
        starts = word_start[input_ids] | ~maskable
        words = torch.cumsum(starts.long(), dim=1)  # (B, T), 1-based per row
        pick = torch.rand((input_ids.shape[0], input_ids.shape[1] + 1), generator=generator) < probability
        chosen = torch.gather(pick, 1, words)
    chosen &= maskable
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    # One uniform draw per position splits the chosen ones 80/10/10.
    u = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (u < mask_fraction)
    to_random = chosen & (u >= mask_fraction) & (u < mask_fraction + random_fraction)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    # A random replacement should be an ordinary piece, never a special token.
    random_ids = torch.where(special[random_ids], torch.full_like(random_ids, mask_id), random_ids)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels
