"""`entropy`: prefer the blocks the model is least sure about (mean predictive entropy at the
masked positions, whatever the true token: uncertainty sampling)."""

import numpy as np

from pretrain.strategies.base import Measures, Strategy


def score(measures: Measures) -> np.ndarray:
    return np.asarray(measures["entropy"], dtype=np.float64)


STRATEGY = Strategy(name="entropy", summary="highest predictive entropy", score=score, measures=("entropy",))
