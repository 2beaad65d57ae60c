"""Diagnostics: mixing matrix, round trips, overlap, convergence and end-state series."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import diagnostics as diag


def test_mixing_matrix_counts_transitions():
    states = np.array([[0, 1], [1, 0], [1, 0], [0, 1]])
    t = diag.mixing_matrix(states, 2)
    # replica 0: 0→1, 1→1, 1→0 ; replica 1: 1→0, 0→0, 0→1  → from 0: {0: 1, 1: 2}, from 1: {0: 2, 1: 1}
    assert np.allclose(t, [[1 / 3, 2 / 3], [2 / 3, 1 / 3]])
    stuck = diag.mixing_matrix(np.tile([0, 1, 2], (5, 1)), 3)
    assert np.allclose(stuck, np.eye(3))


def test_round_trips():
    # replica 0 goes 0 → 2 → 0 → 2 → 0 (two round trips), passing through 1; replica 1 never reaches state 0
    r0 = [0, 1, 2, 1, 0, 0, 2, 2, 1, 0]
    r1 = [2, 1, 1, 2, 2, 1, 1, 2, 2, 2]
    states = np.array([r0, r1]).T
    assert diag.count_round_trips(states, 3) == 2
    assert diag.count_round_trips(np.array([[2, 0]] * 3), 3) == 0


def test_overlap_verdict_thresholds():
    good = np.array([[0.8, 0.2, 0.0], [0.2, 0.6, 0.2], [0.0, 0.2, 0.8]])
    assert diag.overlap_verdict(good).status == "pass"
    poor = np.array([[0.98, 0.02, 0.0], [0.02, 0.78, 0.2], [0.0, 0.2, 0.8]])
    verdict = diag.overlap_verdict(poor, ("l=0", "l=0.5", "l=1"))
    assert verdict.status == "warn" and "states 0-1" in verdict.message and "l=0.5" in verdict.message
    none = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert diag.overlap_verdict(none).status == "fail"


def test_convergence_verdict():
    series = {
        "fraction": [0.5, 1.0],
        "forward_dg": [1.0, 1.1],
        "forward_err": [0.1, 0.07],
        "reverse_dg": [1.2, 1.1],
        "reverse_err": [0.1, 0.07],
    }
    assert diag.convergence_verdict(series).status == "pass"
    drift = dict(series, reverse_dg=[2.0, 1.1])
    assert diag.convergence_verdict(drift).status == "warn"
    assert diag.convergence_verdict({}).status == "warn"


def test_convergence_series_on_oscillators():
    rng = np.random.default_rng(0)
    springs = np.array([1.0, 2.0, 4.0])
    x = rng.normal(0, 1 / np.sqrt(springs)[:, None], size=(3, 400))
    u_kln = 0.5 * springs[None, :, None] * x[:, None, :] ** 2
    series = diag.convergence_series(u_kln, 1.0, n_fractions=4, initial_f_k=0.5 * np.log(springs))
    assert series["fraction"] == [0.25, 0.5, 0.75, 1.0]
    assert series["forward_dg"][-1] == pytest.approx(series["reverse_dg"][-1])
    errs = series["forward_err"]
    assert errs[0] > errs[-1]  # more data, smaller error


def test_end_state_series_follows_the_replica_at_each_end():
    energies = np.zeros((2, 2, 2))
    energies[0, 0] = [1.0, 2.0]
    energies[0, 1] = [3.0, 4.0]
    energies[1, 0] = [5.0, 6.0]
    energies[1, 1] = [7.0, 8.0]
    states = np.array([[0, 1], [1, 0]])
    series = diag.end_state_series(energies, states)
    assert series == {"A": [1.0, 7.0], "B": [4.0, 6.0]}
