"""Statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import compute_statistics, kendall_tau, mue, pearson_r, r2, rmse
from ligand_prep.base import InputError

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
