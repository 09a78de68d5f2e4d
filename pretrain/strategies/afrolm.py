"""`afrolm`: AfroLM's generative loop (Dossou et al. 2022). The model rewrites the end of
training sentences (`pretrain.generate.generate_round`); sentences that pass the filters
(repetition included: "dey dey dey" is dropped) are packed into new blocks, which take up to
`afrolm_generated_share` of the round's kept blocks, per language. They count in the round's
`blocks_per_round`, so afrolm trains on as many tokens as every other arm; the rest of its
blocks are drawn uniformly from the shared candidates (after the shared junk guard).
"""

from __future__ import annotations

import math

from pretrain.strategies.base import Strategy

STRATEGY = Strategy(name="afrolm", summary="the model writes a share of its own blocks (AfroLM)", generates=True)


def block_budget(quotas: dict[str, int], share: float) -> dict[str, int]:
    """Generated blocks allowed per language: floor(share x its kept quota)."""
    return {lang: math.floor(share * q) for lang, q in quotas.items()}
