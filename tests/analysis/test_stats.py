"""Statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import compute_statistics, kendall_tau, mue, pearson_r, r2, rmse
from mlfep_core import InputError

PRED = [1.0, 2.0, 3.0, 4.0]
EXP = [1.5, 1.5, 3.5, 3.0]
# differences −0.5, 0.5, −0.5, 1.0
RMSE = math.sqrt((0.25 + 0.25 + 0.25 + 1.0) / 4)
MUE = 2.5 / 4
# centred pred (−1.5, −0.5, 0.5, 1.5), centred exp (−0.875, −0.875, 1.125, 0.625): Σxy = 3.25, Σx² = 5, Σy² = 3.1875
R = 3.25 / math.sqrt(5 * 3.1875)
# 6 pairs: 4 concordant, 1 discordant, 1 tied in exp → τ_b = 3 / sqrt(6 · 5)
TAU = 3 / math.sqrt(30)


def test_metrics_equal_hand_computed_values():
    assert rmse(PRED, EXP) == pytest.approx(RMSE, rel=1e-12)
    assert mue(PRED, EXP) == pytest.approx(MUE, rel=1e-12)
    assert pearson_r(PRED, EXP) == pytest.approx(R, rel=1e-12)
    assert r2(PRED, EXP) == pytest.approx(R * R, rel=1e-12)
    assert kendall_tau(PRED, EXP) == pytest.approx(TAU, rel=1e-12)


def test_compute_statistics_with_confidence_intervals():
    res = compute_statistics(PRED, EXP, kind="edges", n_bootstrap=500, seed=1)
    assert res.n == 4 and res.kind == "edges"
    expected = {"rmse": RMSE, "mue": MUE, "r2": R * R, "pearson_r": R, "kendall_tau": TAU}
    for name, value in expected.items():
        stat = res.metrics[name]
        assert stat.value == pytest.approx(value, rel=1e-12)
        assert stat.ci_low <= stat.ci_high
    assert res.metrics["rmse"].ci_low <= RMSE <= res.metrics["rmse"].ci_high
    again = compute_statistics(PRED, EXP, kind="edges", n_bootstrap=500, seed=1)
    assert again == res  # seeded


def test_node_statistics_are_centred():
    shifted = [p + 7.0 for p in PRED]
    res = compute_statistics(shifted, EXP, kind="nodes", n_bootstrap=50)
    centred_p = np.array(PRED) - np.mean(PRED)
    centred_e = np.array(EXP) - np.mean(EXP)
    assert res.metrics["rmse"].value == pytest.approx(rmse(centred_p, centred_e))
    assert res.metrics["rmse"].value < 1.0  # the 7 kcal/mol offset is gone


def test_statistics_reject_bad_input():
    with pytest.raises(InputError):
        compute_statistics([1.0], [1.0], kind="edges")
    with pytest.raises(InputError):
        compute_statistics([1.0, 2.0], [1.0], kind="edges")
    const = compute_statistics([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], kind="edges", n_bootstrap=20)
    assert "pearson_r" not in const.metrics and "rmse" in const.metrics


def test_kendall_tau_matches_scipy_with_ties():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, size=40).astype(float)
    y = x + rng.integers(-2, 3, size=40)
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, rel=1e-12)


def test_paired_comparison_sees_a_small_consistent_gain_that_unpaired_intervals_hide():
    """B = A with every error shrunk by 10 %: the unpaired RMSE intervals overlap almost entirely, the paired
    ΔRMSE interval is strictly negative."""
    from analysis.stats import compute_statistics, paired_comparison

    rng = np.random.default_rng(3)
    exp = rng.normal(0.0, 1.5, 30)
    err = rng.normal(0.0, 1.0, 30)
    a, b = exp + err, exp + 0.9 * err
    res = paired_comparison(a, b, exp, n_bootstrap=1000, seed=1)
    assert res.n == 30
    assert res.delta_rmse.value == pytest.approx(-0.1 * rmse(a, exp))
    assert res.delta_rmse.ci_high < 0 and res.p_b_better == 1.0
    ia = compute_statistics(a, exp, kind="edges").metrics["rmse"]
    ib = compute_statistics(b, exp, kind="edges").metrics["rmse"]
    assert ib.ci_high > ia.ci_low  # the unpaired intervals overlap


def test_paired_comparison_noise_widens_the_interval_and_identical_methods_tie():
    from analysis.stats import paired_comparison

    rng = np.random.default_rng(4)
    exp = rng.normal(0.0, 1.5, 20)
    a = exp + rng.normal(0.0, 0.8, 20)
    same = paired_comparison(a, a, exp, n_bootstrap=300)
    assert same.delta_rmse.value == 0.0 and same.delta_rmse.ci_low == same.delta_rmse.ci_high == 0.0
    b = a + rng.normal(0.0, 0.3, 20)
    quiet = paired_comparison(a, b, exp, n_bootstrap=500, seed=2)
    noisy = paired_comparison(
        a, b, exp, sigma_a=[0.5] * 20, sigma_b=[0.5] * 20, sigma_exp=[0.3] * 20, n_bootstrap=500, seed=2
    )
    assert noisy.noise and not quiet.noise
    width = lambda s: s.delta_rmse.ci_high - s.delta_rmse.ci_low  # noqa: E731
    assert width(noisy) > width(quiet)
    with pytest.raises(InputError, match="same items"):
        paired_comparison(a, b[:-1], exp)


def test_statistics_bootstrap_can_draw_the_calculated_and_experimental_errors():
    """With σ given, every bootstrap sample also draws them (cinnabar-style): the RMSE interval of a perfect
    prediction widens from a point to what the errors allow, and the estimate itself is unchanged."""
    exp = np.linspace(-3.0, 3.0, 12)
    plain = compute_statistics(exp, exp, kind="edges", n_bootstrap=400, seed=2)
    noisy = compute_statistics(
        exp, exp, kind="edges", sigma_predicted=[0.3] * 12, sigma_experimental=[0.4] * 12, n_bootstrap=400, seed=2
    )
    assert plain.metrics["rmse"].ci_high == 0.0 and not plain.noise
    assert noisy.noise and noisy.metrics["rmse"].value == 0.0
    assert 0.3 < noisy.metrics["rmse"].ci_high < 0.8  # sqrt(0.3² + 0.4²) = 0.5
    with pytest.raises(InputError, match="3 uncertainties for 12 values"):
        compute_statistics(exp, exp, kind="edges", sigma_predicted=[0.1, 0.2, 0.3])


def test_sigma_calibration_is_one_for_honest_errors_and_flags_optimistic_ones():
    from analysis.stats import sigma_calibration

    rng = np.random.default_rng(4)
    true_sigma = rng.uniform(0.1, 0.5, size=200)
    values = [rng.normal(0.0, s, size=2) for s in true_sigma]
    honest = sigma_calibration(values, [[s, s] for s in true_sigma], n_bootstrap=300)
    assert honest.n_edges == 200 and 0.85 < honest.ratio.value < 1.15
    assert honest.ratio.ci_low < 1.0 < honest.ratio.ci_high
    optimistic = sigma_calibration(values, [[s / 2, s / 2] for s in true_sigma], n_bootstrap=300)
    assert 1.7 < optimistic.ratio.value < 2.3 and optimistic.ratio.ci_low > 1.25
    with pytest.raises(InputError, match="no edge has two or more repeats"):
        sigma_calibration([[1.0]], [[0.2]])
