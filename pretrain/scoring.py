"""Score training blocks with a masked language model: mean MLM loss and mean predictive
entropy at masked positions, from one forward pass (issue 4, item 4).

Scoring masks differ from training masks on purpose:
- every selected position is replaced by `<mask>` (no 80/10/10 rule). The 10% kept tokens
  would let the model read the answer and the 10% random tokens add noise that has nothing
  to do with the block, so the score would vary with the mask draw more than with the block;
  with 100% `<mask>` the score is a plain pseudo-log-likelihood estimate of the block;
- the mask comes from a local `torch.Generator`, so scoring is reproducible and never
  advances the global RNG that drives training (bit-identical resume, RELIABILITY row 1);
- `<s>`, `<pad>`, `</s>`, `<unk>` and `<mask>` are never masked.
"""
from __future__ import annotations

import contextlib
import re
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

# XLM-R layout fixed by docs/interfaces.md: <s>=0, <pad>=1, </s>=2, <unk>=3, ..., <mask> last.
UNK_ID = 3


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DistributedDataParallel (`.module`) and torch.compile
    (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def special_token_ids(model: nn.Module) -> dict[str, int]:
    """Special token ids from the model config (`<unk>` by contract, `<mask>` = last id)."""
    config = unwrap(model).config
    return {
        "bos": config.bos_token_id,
        "pad": config.pad_token_id,
        "eos": config.eos_token_id,
        "unk": UNK_ID,
        "mask": config.vocab_size - 1,
    }


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model.eval()` under `torch.inference_mode()`, restoring each module's train flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        for module, training in flags:
            module.training = training


def scoring_mask(
    input_ids: torch.Tensor,
    mask_prob: float,
    generator: torch.Generator,
    special: Iterable[int],
) -> torch.Tensor:
    """Bool (N, T): each non-special position masked with probability `mask_prob`.

    A block whose draw masks nothing gets its one least-drawn eligible position masked,
    so every block with any ordinary token has a defined score.
    """
    ids = input_ids.cpu()
    eligible = ~torch.isin(ids, torch.tensor(sorted(set(special)), dtype=ids.dtype))
    draws = torch.rand(ids.shape, generator=generator)  # CPU draw: same mask on any device
    mask = (draws < mask_prob) & eligible
    empty = ~mask.any(dim=1) & eligible.any(dim=1)
    if empty.any():
        first = torch.where(eligible, draws, torch.full_like(draws, 2.0)).argmin(dim=1)
        rows = empty.nonzero(as_tuple=True)[0]
        mask[rows, first[rows]] = True
    return mask


def _masked_logits(model: nn.Module, input_ids: torch.Tensor, attention: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Logits (M, V) at the masked positions only: the LM head (the costly vocabulary
    projection) runs on the masked ~15% of positions rather than all of them."""
    if hasattr(model, "roberta") and hasattr(model, "lm_head"):
        hidden = model.roberta(input_ids=input_ids, attention_mask=attention).last_hidden_state
        return model.lm_head(hidden[mask])
    return model(input_ids=input_ids, attention_mask=attention).logits[mask]


def masked_scores(
    model: nn.Module,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    batch_size: int,
    device: torch.device | str,
    mask_id: int | None = None,
    pad_id: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-block mean loss and mean entropy (nats) at `mask` positions, all set to `<mask>`.

    Blocks with no masked position get NaN. Returns float64 arrays `loss`, `entropy` and
    the int64 count `masked`.
    """
    model = unwrap(model)
    ids_all = special_token_ids(model)
    mask_id = ids_all["mask"] if mask_id is None else mask_id
    pad_id = ids_all["pad"] if pad_id is None else pad_id
    n = input_ids.shape[0]
    loss = np.full(n, np.nan)
    entropy = np.full(n, np.nan)
    counts = mask.sum(dim=1).numpy().astype(np.int64)
    with eval_mode(model):
        for start in range(0, n, batch_size):
            ids = input_ids[start:start + batch_size].to(device)
            sel = mask[start:start + batch_size].to(device)
            targets = ids[sel]
            corrupted = ids.masked_fill(sel, mask_id)
            logits = _masked_logits(model, corrupted, (ids != pad_id).long(), sel).float()
            log_probs = torch.log_softmax(logits, dim=-1)                       # (M, V)
            nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)          # (M,)
            ent = -(log_probs.exp() * log_probs).sum(dim=-1)                     # (M,)
            row = sel.nonzero(as_tuple=True)[0]                                  # block of each
            rows = ids.shape[0]
            sums = torch.zeros(rows, 2, dtype=torch.float64, device=ids.device)
            sums.index_add_(0, row, torch.stack([nll, ent], dim=1).double())
            per = sel.sum(dim=1).clamp(min=1).double().unsqueeze(1)
            means = (sums / per).cpu().numpy()
            valid = counts[start:start + rows] > 0
            loss[start:start + rows] = np.where(valid, means[:, 0], np.nan)
            entropy[start:start + rows] = np.where(valid, means[:, 1], np.nan)
    return {"loss": loss, "entropy": entropy, "masked": counts}


def mlm_scores(
    model: nn.Module,
    input_ids: torch.Tensor,
    mask_prob: float,
    generator: torch.Generator,
    special_ids: Iterable[int] | None,
    batch_size: int,
    device: torch.device | str,
) -> dict[str, np.ndarray]:
    """Mask `input_ids` (N, T) with `generator`, then `masked_scores`.

    `special_ids=None` takes them from the model config. The returned dict also holds the
    bool `mask` (N, T) used, so a second model (the `reducible` reference) can be scored on
    exactly the same positions.
    """
    special = list(_special_set(model) if special_ids is None else special_ids)
    mask = scoring_mask(input_ids, mask_prob, generator, special)
    scores = masked_scores(model, input_ids.cpu(), mask, batch_size, device)
    scores["mask"] = mask.numpy()
    return scores


def _special_set(model: nn.Module) -> set[int]:
    return {v for v in special_token_ids(model).values() if v is not None}


# ---------------------------------------------------------------- model-free block statistics
# The score-based junk guard misses junk whose loss looks normal: a block in another script
# that the multilingual model also knows, or one character repeated (easy to predict). These
# statistics, read from the token ids alone, let selection flag them (RELIABILITY row 11).

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
NO_SCRIPT = ""  # a token without letters (digits, punctuation, `▁`, specials)


def token_scripts(tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """Per vocabulary id: the Unicode script of its first letter ("" if none), and whether it
    is a byte-fallback piece (`<0x..>`) or `<unk>`. Cached per tokenizer object."""
    key = (id(tokenizer), len(tokenizer))
    if key not in _SCRIPT_CACHE:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        scripts = np.array([_first_letter_script(p) for p in pieces], dtype=object)
        is_byte = np.array([bool(_BYTE_PIECE.match(p)) for p in pieces])
        is_byte[tokenizer.unk_token_id] = True
        for special in tokenizer.all_special_ids:
            scripts[special] = NO_SCRIPT
        _SCRIPT_CACHE.clear()  # one tokenizer per run; keep memory bounded
        _SCRIPT_CACHE[key] = (scripts, is_byte)
    return _SCRIPT_CACHE[key]


_SCRIPT_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _first_letter_script(piece: str) -> str:
    from pretrain.generate import char_script  # scripts are defined once, with the filters

    for char in piece:
        if char.isalpha():
            return char_script(char)
    return NO_SCRIPT


def block_stats(blocks: np.ndarray, scripts: np.ndarray, is_byte: np.ndarray,
                special: Iterable[int]) -> dict[str, np.ndarray]:
    """Per block (rows of token ids): `distinct` share of distinct ordinary tokens among
    ordinary tokens, `bytes` share of byte-fallback/`<unk>` tokens, and `script_counts`, a
    list of {script: tokens} over tokens that carry letters."""
    special = np.array(sorted(set(special)))
    distinct, byte_share, counts = [], [], []
    for row in blocks:
        ordinary = row[~np.isin(row, special)]
        n = max(len(ordinary), 1)
        distinct.append(len(np.unique(ordinary)) / n)
        byte_share.append(float(is_byte[ordinary].sum()) / n)
        names, freq = np.unique(scripts[ordinary][scripts[ordinary] != NO_SCRIPT],
                                return_counts=True)
        counts.append(dict(zip(names.tolist(), freq.tolist())))
    return {"distinct": np.array(distinct), "bytes": np.array(byte_share),
            "script_counts": counts}
