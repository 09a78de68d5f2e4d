"""study/stats.py against scipy on fixed numbers: paired t, exact sign-flip, Holm, TOST, power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from study import stats

# Final losses of 8 paired seeds (strategy, control) and their differences.
STRATEGY = np.array([6.902, 6.931, 6.948, 6.917, 6.925, 6.940, 6.911, 6.958])
CONTROL = np.array([6.933, 6.943, 6.944, 6.944, 6.944, 6.948, 6.933, 6.952])
DIFFS = STRATEGY - CONTROL


def test_paired_t_is_scipy_ttest_rel_with_its_t_interval():
    got = stats.paired_t(DIFFS)
    ref = sp.ttest_rel(STRATEGY, CONTROL)
    assert got.n == 8 and got.df == 7
    assert got.mean == pytest.approx(DIFFS.mean(), abs=1e-15)
    assert got.t == pytest.approx(ref.statistic, rel=1e-12)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-10)
    low, high = ref.confidence_interval(0.95)
    assert got.ci == pytest.approx((low, high), rel=1e-10)
    half = sp.t.ppf(0.975, 7) * DIFFS.std(ddof=1) / math.sqrt(8)
    assert got.ci == pytest.approx((DIFFS.mean() - half, DIFFS.mean() + half), rel=1e-12)
    # the 90% interval too, and a difference the other way round flips only the sign
    assert stats.paired_t(DIFFS, 0.90).ci == pytest.approx(ref.confidence_interval(0.90), rel=1e-10)
    assert stats.paired_t(-DIFFS).p == pytest.approx(got.p, rel=1e-12)


def test_paired_t_edge_cases():
    assert math.isnan(stats.paired_t([0.1]).p)  # one pair: nothing to test
    flat = stats.paired_t([-0.1] * 5)  # no spread: a mean away from 0 is certain
    assert flat.p == 0.0 and flat.ci == (pytest.approx(-0.1), pytest.approx(-0.1))
    assert stats.paired_t([0.0, 0.0, 0.0]).p == 1.0
    with pytest.raises(ValueError):
        stats.paired_t([])
    with pytest.raises(ValueError):
        stats.paired_t([0.1, float("nan")])


@pytest.mark.parametrize(
    "diffs",
    [
        DIFFS,
        [-0.031, -0.012, -0.004, -0.027, -0.019, -0.008, -0.022, -0.006],  # every seed better: 2 / 256
        [0.5, -0.1, 0.2],
        [-0.01, 0.01, -0.01, 0.01],  # mean 0, ties in the null distribution
        np.linspace(-0.05, 0.02, 12),
    ],
)
def test_sign_flip_is_scipys_exact_paired_permutation_test(diffs):
    diffs = np.asarray(diffs, dtype=float)
    control = np.full(len(diffs), 7.0)
    ref = sp.permutation_test(
        (control + diffs, control),
        lambda x, y: np.mean(x - y),
        vectorized=False,
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="two-sided",
    )
    assert len(ref.null_distribution) == 2 ** len(diffs)  # really exact
    assert stats.sign_flip(diffs) == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_floor_and_large_n():
    all_better = [-0.02, -0.01, -0.03, -0.015, -0.025, -0.012, -0.018, -0.022]
    assert stats.sign_flip(all_better) == pytest.approx(2 / 256)  # the smallest p 8 seeds can give
    assert stats.sign_flip([-0.02] * 5) == pytest.approx(2 / 32)  # 5 seeds can never reach 0.05
    many = np.random.default_rng(3).normal(-0.01, 0.02, size=20)  # beyond 16 pairs: fixed-seed resampling
    p = stats.sign_flip(many)
    assert p == stats.sign_flip(many) and 0 < p < 1
    assert p == pytest.approx(sp.ttest_1samp(many, 0).pvalue, abs=0.05)


def test_holm_matches_a_worked_example():
    # m = 4: sorted p 0.01, 0.02, 0.03, 0.04 -> x4, x3, x2, x1 = 0.04, 0.06, 0.06, 0.04 -> running max
    assert stats.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # the step-down stops mattering once a product exceeds 1; ties keep their given order
    assert stats.holm([0.5, 0.001, 0.5]) == pytest.approx([1.0, 0.003, 1.0])
    assert stats.holm([0.012, 0.012]) == pytest.approx([0.024, 0.024])
    assert stats.holm([0.04]) == [0.04]
    got = stats.holm([0.02, float("nan"), 0.03])  # nothing tested: stays nan, not counted in m
    assert math.isnan(got[1]) and got[0] == pytest.approx(0.04) and got[2] == pytest.approx(0.04)
    assert stats.holm([]) == []


def test_tost_is_two_one_sided_scipy_tests_with_the_90_percent_interval():
    got = stats.tost(DIFFS, sesoi=0.02, alpha=0.05)
    lower = sp.ttest_1samp(DIFFS, -0.02, alternative="greater")
    upper = sp.ttest_1samp(DIFFS, 0.02, alternative="less")
    assert got.p_lower == pytest.approx(lower.pvalue, rel=1e-10)
    assert got.p_upper == pytest.approx(upper.pvalue, rel=1e-10)
    assert got.p == max(got.p_lower, got.p_upper)
    two_sided = sp.ttest_1samp(DIFFS, 0.0)
    assert got.ci == pytest.approx(two_sided.confidence_interval(0.90), rel=1e-10)
    # equivalent at 0.05 exactly when the 90% interval lies inside (-sesoi, +sesoi)
    for sesoi in (0.005, 0.01, 0.02, 0.05):
        t = stats.tost(DIFFS, sesoi=sesoi)
        assert (t.p < 0.05) == (-sesoi < t.ci[0] and t.ci[1] < sesoi)
    tight = stats.tost([0.001, -0.002, 0.0, 0.002, -0.001, 0.001, 0.0, -0.001])
    assert tight.p < 0.001
    with pytest.raises(ValueError):
        stats.tost(DIFFS, sesoi=0)


def test_power_and_minimum_detectable_effect():
    sd, n = DIFFS.std(ddof=1), 8
    mde = stats.min_detectable_effect(sd, n)
    assert stats.power(mde, sd, n) == pytest.approx(0.8, abs=1e-8)
    # the noncentral t directly
    crit = sp.t.ppf(0.975, 7)
    nc = mde * math.sqrt(n) / sd
    assert sp.nct.sf(crit, 7, nc) + sp.nct.cdf(-crit, 7, nc) == pytest.approx(0.8, abs=1e-8)
    # in standard deviations it approaches the normal approximation (z_0.975 + z_0.8) / sqrt(n) for many pairs
    normal = (sp.norm.ppf(0.975) + sp.norm.ppf(0.8)) / math.sqrt(400)
    assert stats.min_detectable_effect(1.0, 400) == pytest.approx(normal, rel=0.01)
    assert stats.min_detectable_effect(1.0, 8) > (sp.norm.ppf(0.975) + sp.norm.ppf(0.8)) / math.sqrt(8)
    # Holm over 5 arms asks for more; so does a smaller sample
    assert stats.min_detectable_effect(sd, n, k=5) > mde > stats.min_detectable_effect(sd, 16)
    # and scipy's own t-test finds an effect of that size in ~80% of simulated studies
    rng = np.random.default_rng(0)
    sims = rng.normal(mde, sd, size=(20_000, n))
    found = np.mean(sp.ttest_1samp(sims, 0.0, axis=1).pvalue < 0.05)
    assert found == pytest.approx(0.8, abs=0.015)
    assert math.isnan(stats.min_detectable_effect(sd, 1)) and stats.min_detectable_effect(0.0, 8) == 0.0
