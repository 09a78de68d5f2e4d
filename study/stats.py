"""Statistics of the selection study: pure functions on paired differences.

A paired difference is one seed's value for a strategy minus the same seed's value for the
control (the runs of one seed share initial weights, masks and validation masks). For a loss,
lower is better, so a negative difference favours the strategy. Every function takes the
differences (or p-values) as plain numbers and returns plain numbers; tests/test_study_stats.py
checks each against scipy on fixed numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sp

EXACT_MAX = 16  # sign-flip: every one of the 2^n sign assignments up to this many pairs


def _array(diffs: Sequence[float]) -> np.ndarray:
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or not len(d) or not np.all(np.isfinite(d)):
        raise ValueError(f"need a non-empty list of finite paired differences, got {diffs!r}")
    return d


def _ratio(num: float, den: float) -> float:
    """num / den where a zero spread gives +-inf for a non-zero numerator and nan for 0 / 0."""
    if den > 0:
        return num / den
    return math.copysign(math.inf, num) if num else math.nan


@dataclass(frozen=True)
class PairedT:
    """Paired t-test of the mean difference against 0 (= scipy.stats.ttest_rel)."""

    n: int
    mean: float
    sd: float  # sample standard deviation of the differences (ddof 1)
    t: float
    df: int
    p: float  # two-sided
    ci: tuple[float, float]  # t-based interval of the mean difference at `confidence`


def paired_t(diffs: Sequence[float], confidence: float = 0.95) -> PairedT:
    """Two-sided paired t-test and the t-based confidence interval of the mean difference. With
    fewer than two pairs nothing is tested (p and the interval are nan); with no spread at all a
    non-zero mean has p 0 and a zero mean p 1."""
    d = _array(diffs)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return PairedT(n, mean, math.nan, math.nan, 0, math.nan, (math.nan, math.nan))
    sd = float(d.std(ddof=1))
    se, df = sd / math.sqrt(n), n - 1
    t = _ratio(mean, se)
    p = 1.0 if math.isnan(t) else float(2 * sp.t.sf(abs(t), df))
    half = float(sp.t.ppf(0.5 + confidence / 2, df)) * se
    return PairedT(n, mean, sd, t, df, p, (mean - half, mean + half))


def sign_flip(diffs: Sequence[float], resamples: int = 1 << 16, seed: int = 0) -> float:
    """Two-sided p of the paired sign-flip permutation test of the mean difference.

    Under the null (no difference) each pair's sign is as likely flipped as not; the null
    distribution is the mean over every one of the 2^n sign assignments (n <= 16), the observed
    assignment included. p = 2 x min(share of assignments at or below the observed mean, share at or
    above it), at most 1: scipy.stats.permutation_test(..., permutation_type='samples',
    n_resamples=inf) on the paired values, with its tolerance for ties. Over 16 pairs, `resamples`
    random assignments (fixed `seed`) stand in for the full set, counted with the observed one."""
    d = _array(diffs)
    n, observed = len(d), float(d.mean())
    if n <= EXACT_MAX:
        signs = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        null, extra = signs @ d / n, 0
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, n))
        null, extra = signs @ d / n, 1
    gamma = abs(observed) * np.finfo(float).eps * 100  # scipy's allowance for rounding in the null
    less = (np.count_nonzero(null <= observed + gamma) + extra) / (len(null) + extra)
    greater = (np.count_nonzero(null >= observed - gamma) + extra) / (len(null) + extra)
    return float(min(1.0, 2 * min(less, greater)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the order given: the i-th smallest of m
    p-values is multiplied by m - i + 1 (i from 1), then made non-decreasing in that order and
    capped at 1. A nan p-value (nothing tested) stays nan and does not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m, running = len(order), 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        out[index] = running
    return [float(x) for x in out]


@dataclass(frozen=True)
class Tost:
    """Two one-sided paired t-tests of equivalence within +-sesoi."""

    p: float  # max of the two one-sided p-values: equivalent at level alpha when p < alpha
    p_lower: float  # H0: mean <= -sesoi
    p_upper: float  # H0: mean >= +sesoi
    ci: tuple[float, float]  # the (1 - 2 alpha) t interval: inside (-sesoi, sesoi) exactly when p < alpha


def tost(diffs: Sequence[float], sesoi: float = 0.02, alpha: float = 0.05) -> Tost:
    """Equivalence test (TOST) of the mean difference against the smallest effect of interest
    `sesoi`: = scipy.stats.ttest_1samp(diffs, -sesoi, alternative='greater') and
    ttest_1samp(diffs, +sesoi, alternative='less'), p the larger of the two."""
    if sesoi <= 0:
        raise ValueError(f"sesoi must be > 0, got {sesoi}")
    d = _array(diffs)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return Tost(math.nan, math.nan, math.nan, (math.nan, math.nan))
    se, df = float(d.std(ddof=1)) / math.sqrt(n), n - 1
    p_lower = float(sp.t.sf(_ratio(mean + sesoi, se), df)) if mean + sesoi or se else 1.0
    p_upper = float(sp.t.cdf(_ratio(mean - sesoi, se), df)) if mean - sesoi or se else 1.0
    half = float(sp.t.ppf(1 - alpha, df)) * se
    return Tost(max(p_lower, p_upper), p_lower, p_upper, (mean - half, mean + half))


def power(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level `alpha` when the true mean difference is
    `delta` and the differences' standard deviation `sd` (noncentral t, scipy.stats.nct)."""
    df = n - 1
    crit = float(sp.t.ppf(1 - alpha / 2, df))
    nc = abs(delta) * math.sqrt(n) / sd  # symmetric: the sign of delta does not change the power
    wrong_side = float(sp.nct.cdf(-crit, df, nc))
    if math.isnan(wrong_side):  # scipy gives nan far in this tail, where it is below nct.cdf(crit) ~ 0
        wrong_side = 0.0
    return float(sp.nct.sf(crit, df, nc)) + wrong_side


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, k: int = 1, target: float = 0.8) -> float:
    """The smallest true mean difference (same unit as `sd`) that the two-sided paired t-test
    finds with probability `target` at level alpha / k: with k arms under Holm, the first (most
    demanding) step of the correction, so a conservative bound. nan with fewer than two pairs;
    0 when the differences do not vary."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd <= 0:
        return 0.0
    level = alpha / max(1, k)
    high = 1.0
    while power(high * sd, sd, n, level) < target:
        high *= 2
    return float(optimize.brentq(lambda dz: power(dz * sd, sd, n, level) - target, 0.0, high, xtol=1e-10)) * sd
