"""The selection strategies, one module each, and the registry everything reads: the
`selection.strategy` choices and --help, docs/pretrain.md and the study's arms.

Adding a strategy: a module exposing `STRATEGY = Strategy(...)` (pretrain/strategies/base.py)
and one line below.
"""

from pretrain.strategies import afrolm, entropy, loss, mix, random_choice, rho
from pretrain.strategies.base import MEASURES, Measures, Strategy

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        random_choice.STRATEGY,
        loss.STRATEGY,
        rho.STRATEGY,
        entropy.STRATEGY,
        afrolm.STRATEGY,
        mix.STRATEGY,
    )
}

__all__ = ["MEASURES", "Measures", "STRATEGIES", "Strategy", "get"]


def get(name: str) -> Strategy:
    """The registered strategy `name`; a clear error naming the known ones otherwise."""
    if name not in STRATEGIES:
        raise ValueError(f"selection.strategy = {name!r}: unknown strategy; known: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
