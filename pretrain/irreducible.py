"""The irreducible-loss model of `rho` and `mix` (the `ref_loss` measure; pretrain/strategies/rho.py).

Trained once, at the first round that needs it, on the held-out slice of the training pool:
a copy of the model as it is at that round trained `rho_reference_steps` AdamW steps. Its loss
per block, at the block's fixed scoring mask, is cached by block id (`cached`, `store`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.scoring import _masked_logits, scoring_mask, special_token_ids, unwrap


def train_reference(
    model: nn.Module,
    pool,
    holdout: np.ndarray,
    steps: int,
    batch: int,
    lr: float,
    mask_prob: float,
    generator: torch.Generator,
    device,
    width: int = 0,
) -> dict[str, torch.Tensor]:
    """A copy of `model` trained `steps` AdamW steps on blocks of `holdout` (all-`<mask>` MLM at
    `mask_prob`, batches drawn with `generator`); returns its CPU weights. `width` > 0 trains on
    each block's first `width` tokens only: the reference is only ever asked about the scored
    prefix of a block (`selection.score_tokens`), so longer context would cost without use. The
    global RNG, the model and its train flags are left as they were (dropout draws come from a
    forked RNG)."""
    if not len(holdout):
        raise ValueError("the irreducible-loss model needs a held-out slice: selection.holdout_share gives no block")
    reference = copy.deepcopy(unwrap(model)).to(device)
    special = special_token_ids(reference)
    ignore = [v for v in special.values() if v is not None]
    optimizer = torch.optim.AdamW(reference.parameters(), lr=lr)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        reference.train()
        for _ in range(steps):
            pick = holdout[torch.randint(len(holdout), (batch,), generator=generator).numpy()]
            blocks = torch.as_tensor(np.asarray(pool.blocks(pick), dtype=np.int64))
            if width:
                blocks = blocks[:, :width]
            mask = scoring_mask(blocks, mask_prob, generator, ignore)
            inputs = blocks.masked_fill(mask, special["mask"]).to(device)
            logits = _masked_logits(reference, inputs, (blocks != special["pad"]).long().to(device), mask.to(device))
            loss = F.cross_entropy(logits.float(), blocks[mask].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {k: v.detach().to("cpu", copy=True) for k, v in reference.state_dict().items()}


def load_reference(model: nn.Module, weights: dict[str, torch.Tensor], device) -> nn.Module:
    reference = copy.deepcopy(unwrap(model))
    reference.load_state_dict(weights)
    return reference.to(device)


def cached(cache: torch.Tensor, ids: np.ndarray) -> np.ndarray:
    """Cached irreducible losses of `ids` (NaN where not computed yet)."""
    out = np.full(len(ids), np.nan)
    known = ids < len(cache)
    out[known] = cache[torch.as_tensor(ids[known], dtype=torch.long)].double().numpy()
    return out


def store(cache: torch.Tensor, ids: np.ndarray, losses: np.ndarray) -> torch.Tensor:
    """The cache with `losses` written at `ids` (grown, NaN-filled, when an id is beyond it)."""
    if len(ids) and ids.max() >= len(cache):
        grown = torch.full((int(ids.max()) + 1,), float("nan"), dtype=torch.float32)
        grown[: len(cache)] = cache
        cache = grown
    cache[torch.as_tensor(ids, dtype=torch.long)] = torch.as_tensor(losses, dtype=torch.float32)
    return cache
