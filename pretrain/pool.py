"""The contract between the training loop (pretrain/train.py, pretrain/data.py) and
self-active selection (pretrain/selection.py, pretrain/scoring.py).

The training loop owns the token data and hands selection a `BlockPool`; selection returns
which blocks the next round trains on. Validation blocks are never in the pool, so no
strategy can select (or generate from) validation or evaluation text.

Optional: a pool with noise blocks (`data.noise_share`, pretrain/noise.py) has `n_noise` > 0 and
`noise_kind(ids)` (each id's kind, "" for a training or generated block); selection then keeps
noise out of the held-out slice and reports the share of noise it chose. A pool without them
has no noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


class BlockPool(Protocol):
    """Training blocks of fixed length, addressed by global integer ids."""

    block_len: int
    # The run's Hugging Face fast tokenizer (XLM-R special ids, `<mask>` last). The `afrolm`
    # strategy needs it to split prompts into words (`▁` pieces), mask and decode them.
    tokenizer: "PreTrainedTokenizerFast"

    @property
    def languages(self) -> list[str]:
        """Languages with at least one training block, sorted."""

    def ids(self, lang: str) -> np.ndarray:
        """All block ids (int64) of `lang` currently in the pool, including generated ones."""

    def blocks(self, ids: Sequence[int]) -> np.ndarray:
        """Token ids of those blocks, shape (len(ids), block_len), int64; `<s>` first."""

    def sample_sentences(self, lang: str, n: int, rng: np.random.Generator) -> list[str]:
        """Up to `n` training-split corpus lines of `lang` (prompts for the `afrolm` strategy)."""

    def add_generated(self, lang: str, texts: Sequence[str]) -> np.ndarray:
        """Tokenize and pack `texts` into new blocks of `lang`; return their new ids.

        Added blocks are recorded in the pool's state, so a resumed run sees the same pool.
        """
