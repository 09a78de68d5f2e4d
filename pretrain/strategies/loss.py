"""`loss`: prefer the blocks the current model finds hardest (mean MLM loss at the block's
fixed scoring mask; Loshchilov & Hutter 2015, "online batch selection")."""

import numpy as np

from pretrain.strategies.base import Measures, Strategy


def score(measures: Measures) -> np.ndarray:
    return np.asarray(measures["loss"], dtype=np.float64)


STRATEGY = Strategy(name="loss", summary="highest current MLM loss", score=score, measures=("loss",))
