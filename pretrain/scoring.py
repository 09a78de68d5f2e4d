"""Score training blocks with a masked language model: mean MLM loss and mean predictive
entropy at masked positions, from one forward pass.

Scoring masks differ from training masks on purpose:
- every selected position is replaced by `<mask>` (no 80/10/10 rule). The 10% kept tokens
  would let the model read the answer and the 10% random tokens add noise that has nothing
  to do with the block, so the score would vary with the mask draw more than with the block;
  with 100% `<mask>` the score is a plain pseudo-log-likelihood estimate of the block;
- the mask comes from a local `torch.Generator`, so scoring is reproducible and never
  advances the global RNG that drives training (bit-identical resume);
- `<s>`, `<pad>`, `</s>`, `<unk>` and `<mask>` are never masked.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from pretrain.scripts import char_script

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
    draws = torch.rand(ids.shape, generator=generator)  # CPU draw: same mask on any device
    return _mask_from_draws(ids, draws, mask_prob, special)


def _mask_from_draws(ids: torch.Tensor, draws: torch.Tensor, mask_prob: float, special: Iterable[int]) -> torch.Tensor:
    """Positions whose draw is under `mask_prob`, specials never; a block left with none gets
    its least-drawn eligible position."""
    eligible = ~torch.isin(ids, torch.tensor(sorted(set(special)), dtype=ids.dtype))
    mask = (draws < mask_prob) & eligible
    empty = ~mask.any(dim=1) & eligible.any(dim=1)
    if empty.any():
        first = torch.where(eligible, draws, torch.full_like(draws, 2.0)).argmin(dim=1)
        rows = empty.nonzero(as_tuple=True)[0]
        mask[rows, first[rows]] = True
    return mask


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a counter-based hash, so a block's mask is a
    function of (seed, block id, position) alone, not of which blocks are scored with it."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def block_mask(
    input_ids: torch.Tensor, block_ids: np.ndarray, mask_prob: float, seed: int, special: Iterable[int]
) -> torch.Tensor:
    """Bool (N, T): the fixed scoring mask of each block, the same positions every time a
    block is scored (any round, any strategy, any batch): position t of block b is masked when
    hash(seed, b, t) < mask_prob, specials never. A block whose draw masks nothing gets its
    least-drawn eligible position, as in `scoring_mask`. Fixed masks keep mask noise out of
    round-to-round score changes and let cached reference losses (`rho`) share positions."""
    ids = input_ids.cpu()
    width = ids.shape[1]
    key = _splitmix64(np.asarray(block_ids, dtype=np.uint64) ^ _splitmix64(np.uint64(seed)))
    hashed = _splitmix64(key[:, None] + np.arange(width, dtype=np.uint64)[None, :])
    draws = torch.from_numpy((hashed >> np.uint64(11)).astype(np.float64) / 2.0**53)
    return _mask_from_draws(ids, draws, mask_prob, special)


def _masked_logits(
    model: nn.Module, input_ids: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
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
    with_entropy: bool = True,
) -> dict[str, np.ndarray]:
    """Per-block mean loss and mean entropy (nats) at `mask` positions, all set to `<mask>`.

    Blocks with no masked position get NaN. Returns float64 arrays `loss`, `entropy` (NaN
    throughout when `with_entropy` is false: it costs a pass over the vocabulary) and the int64
    count `masked`.
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
            ids = input_ids[start : start + batch_size].to(device)
            sel = mask[start : start + batch_size].to(device)
            targets = ids[sel]
            corrupted = ids.masked_fill(sel, mask_id)
            logits = _masked_logits(model, corrupted, (ids != pad_id).long(), sel).float()
            log_probs = torch.log_softmax(logits, dim=-1)  # (M, V)
            nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)  # (M,)
            ent = -(log_probs.exp() * log_probs).sum(dim=-1) if with_entropy else torch.full_like(nll, torch.nan)
            row = sel.nonzero(as_tuple=True)[0]  # block of each
            rows = ids.shape[0]
            sums = torch.zeros(rows, 2, dtype=torch.float64, device=ids.device)
            sums.index_add_(0, row, torch.stack([nll, ent], dim=1).double())
            per = sel.sum(dim=1).clamp(min=1).double().unsqueeze(1)
            means = (sums / per).cpu().numpy()
            valid = counts[start : start + rows] > 0
            loss[start : start + rows] = np.where(valid, means[:, 0], np.nan)
            entropy[start : start + rows] = np.where(valid, means[:, 1], np.nan)
    return {"loss": loss, "entropy": entropy, "masked": counts}


# ---------------------------------------------------------------- model-free block statistics
# The score-based junk guard misses junk whose loss looks normal: a block in another script
# that the multilingual model also knows, or one character repeated (easy to predict). These
# statistics, read from the token ids alone, let selection flag them.

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass(frozen=True)
class TokenTable:
    """Per vocabulary id: script code (index into `scripts`, -1 when the piece has no
    letter) and whether it is a byte-fallback piece (`<0x..>`) or `<unk>`."""

    scripts: tuple[str, ...]
    script_of: np.ndarray  # (V,) int16
    is_byte: np.ndarray  # (V,) bool


_TABLES: dict[tuple[int, int], TokenTable] = {}


def token_table(tokenizer) -> TokenTable:
    """Built once per tokenizer object (a 250k vocabulary takes about a second)."""
    key = (id(tokenizer), len(tokenizer))
    if key not in _TABLES:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        names: dict[str, int] = {}
        script_of = np.full(len(pieces), -1, dtype=np.int16)
        for i, piece in enumerate(pieces):
            letter = next((c for c in piece if c.isalpha()), None)
            if letter is not None:
                script_of[i] = names.setdefault(char_script(letter), len(names))
        is_byte = np.array([bool(_BYTE_PIECE.match(p)) for p in pieces])
        is_byte[tokenizer.unk_token_id] = True
        script_of[list(tokenizer.all_special_ids)] = -1
        _TABLES.clear()  # one tokenizer per run: keep memory bounded
        _TABLES[key] = TokenTable(tuple(names), script_of, is_byte)
    return _TABLES[key]


def block_stats(blocks: np.ndarray, table: TokenTable, special: Iterable[int]) -> dict[str, np.ndarray]:
    """Per block (N, T): `distinct`, the share of distinct ordinary tokens among its
    ordinary tokens; `bytes`, the share of byte-fallback/`<unk>` tokens; `scripts`, (N, S)
    counts of letter-bearing tokens per script of `table.scripts`."""
    blocks = np.asarray(blocks, dtype=np.int64)
    ordinary = ~np.isin(blocks, np.array(sorted(set(special))))
    n_ordinary = np.maximum(ordinary.sum(axis=1), 1)
    ranked = np.sort(np.where(ordinary, blocks, -1), axis=1)  # specials sort first as -1
    new_value = np.diff(ranked, axis=1, prepend=-1) != 0
    distinct = (new_value & (ranked >= 0)).sum(axis=1)
    byte_share = (table.is_byte[blocks] & ordinary).sum(axis=1) / n_ordinary
    codes = np.where(ordinary, table.script_of[blocks], -1)
    counts = np.zeros((len(blocks), max(len(table.scripts), 1)), dtype=np.int64)
    rows, cols = np.nonzero(codes >= 0)
    np.add.at(counts, (rows, codes[rows, cols]), 1)
    return {"distinct": distinct / n_ordinary, "bytes": byte_share, "scripts": counts}
