"""`rho`: RHO-LOSS (Mindermann et al. 2022): prefer blocks whose loss is high now but low under
an irreducible-loss model, i.e. learnable, worth learning and not yet learnt. Noise is hard for
both models (score about 0); what is already learnt is easy for both.

The irreducible-loss model (pretrain/irreducible.py) is trained once, at the first round that
needs it, on the held-out slice of the training pool (`selection.holdout_share`, never a candidate in any arm; never the
valid split, never evaluation data): a copy of the model as it is at that round (round 0: its
initialisation) trained `rho_reference_steps` steps. Its loss per block, at the block's fixed
scoring mask, is computed the first time the block is a candidate and cached by block id, so each
block costs one reference forward per run and `loss - ref_loss` compares the same positions.
"""

from __future__ import annotations

import numpy as np

from pretrain.strategies.base import Measures, Strategy


def score(measures: Measures) -> np.ndarray:
    """Reducible loss: current loss minus the irreducible-loss model's loss on the same positions."""
    return np.asarray(measures["loss"], np.float64) - np.asarray(measures["ref_loss"], np.float64)


STRATEGY = Strategy(
    name="rho",
    summary="RHO-LOSS: current loss minus an irreducible-loss model's",
    score=score,
    measures=("loss", "ref_loss"),
)
