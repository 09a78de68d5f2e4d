"""What a selection strategy is: a name, the per-candidate measures a round computes for it,
and one pure function from those measures (and carried state) to its choice.

The round itself (`pretrain/selection.py`) is the same for every strategy: the same candidate
pool for a given seed and round, the same junk guard, the same seeds. A strategy only says how
blocks are preferred within that frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

# Per-candidate arrays a round can compute, all aligned with the round's candidate ids:
#   "loss"     mean MLM loss of the current model at the block's fixed scoring mask (nats)
#   "entropy"  mean predictive entropy there (nats)
#   "ref_loss" the irreducible-loss model's loss on the same positions (cached per block id)
MEASURES = ("loss", "entropy", "ref_loss")
Measures = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str  # one line for --help, the docs and the study
    # Per-candidate score from the measures (higher is preferred); None: uniform within a language.
    score: Callable[[Measures], np.ndarray] | None = None
    measures: tuple[str, ...] = ()  # what the round computes for it (subset of MEASURES)
    # Per-language kept weights from (previous weights, per-language measures, settings);
    # None: the temperature shares n_i^alpha every strategy starts from.
    language_weights: Callable[..., dict[str, float]] | None = None
    generates: bool = False  # the model writes part of the round's blocks (afrolm)

    def __post_init__(self) -> None:
        unknown = set(self.measures) - set(MEASURES)
        if unknown:
            raise ValueError(f"strategy {self.name}: unknown measures {sorted(unknown)}")
