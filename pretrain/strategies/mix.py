"""`mix`: online language-mixture selection. Each round, every language's kept share moves by an
exponentiated-gradient step on its excess loss over the irreducible-loss model (`rho`'s reference,
trained on the held-out slice): DoReMi (Xie et al. 2023) run online, as in online data mixing
(Albalak et al. 2023). Within a language, blocks are drawn uniformly (after the junk guard).

    w_i <- w_i * exp(mix_step_size * excess_i), normalised;  w <- (1 - mix_floor) w + mix_floor / L

The second step (DoReMi's smoothing) keeps every language at or above mix_floor / L, so none
starves. Weights start from the temperature shares every strategy uses (n_i^alpha).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from pretrain.strategies.base import Measures, Strategy


def language_excess(measures_by_lang: Mapping[str, Measures]) -> dict[str, float]:
    """Mean over a language's candidates of max(loss - ref_loss, 0) (DoReMi clips at 0: a language
    the reference finds harder than the current model needs no more weight)."""
    out = {}
    for lang, m in measures_by_lang.items():
        excess = np.asarray(m["loss"], np.float64) - np.asarray(m["ref_loss"], np.float64)
        excess = excess[np.isfinite(excess)]
        out[lang] = float(np.clip(excess, 0, None).mean()) if len(excess) else 0.0
    return out


def update_weights(
    weights: Mapping[str, float], excess: Mapping[str, float], step_size: float, floor: float
) -> dict[str, float]:
    """One exponentiated-gradient step on `weights` (any positive numbers) with the uniform floor."""
    langs = sorted(weights)
    log_w = np.log([max(weights[lang], 1e-300) for lang in langs])
    log_w += step_size * np.array([excess.get(lang, 0.0) for lang in langs])
    w = np.exp(log_w - log_w.max())
    w = (1.0 - floor) * w / w.sum() + floor / len(langs)
    return dict(zip(langs, w.tolist()))


def language_weights(previous: Mapping[str, float], measures_by_lang: Mapping[str, Measures], cfg) -> dict[str, float]:
    return update_weights(previous, language_excess(measures_by_lang), cfg.mix_step_size, cfg.mix_floor)


STRATEGY = Strategy(
    name="mix",
    summary="language mixture by excess loss (online DoReMi), random within",
    measures=("loss", "ref_loss"),
    language_weights=language_weights,
)
