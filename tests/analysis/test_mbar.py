"""MBAR per leg against the exact free energies of harmonic oscillators."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.mbar import analyse_leg, bar_neighbours, solve_mbar, u_kln_from_replicas
from analysis.results import LegResult
from mlfep_core import InputError
from mlfep_core.constants import GAS_CONSTANT_KCAL_MOL_K

T = 300.0
KT = GAS_CONSTANT_KCAL_MOL_K * T
SPRINGS = np.array([1.0, 1.5, 2.2, 3.2, 4.5])  # force constants in kT / length²


def exact_dg_kt(springs: np.ndarray) -> float:
    """f_K−1 − f_0 = −ln(Z_K−1 / Z_0) = 0.5 ln(k_K−1 / k_0) for u = k x² / 2."""
    return 0.5 * float(np.log(springs[-1] / springs[0]))


def oscillator_u_kln(rng: np.random.Generator, springs: np.ndarray, n: int) -> np.ndarray:
    """Exact samples from every state: u_kln[k, l, n] = k_l x_kn² / 2, shape (K, K, N)."""
    x_kn = rng.normal(0.0, 1.0 / np.sqrt(springs)[:, None], size=(springs.size, n))
    return 0.5 * springs[None, :, None] * x_kn[:, None, :] ** 2


def oscillator_replicas(rng: np.random.Generator, springs: np.ndarray, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Replica-format arrays: energies (N_iter, K, K), replica_states (N_iter, K), random permutations."""
    k = springs.size
    states = np.array([rng.permutation(k) for _ in range(n_iter)])
    x = rng.normal(0.0, 1.0 / np.sqrt(springs[states]))  # replica r samples the state it sits in
    energies = 0.5 * springs[None, None, :] * x[:, :, None] ** 2
    return energies, states


def test_u_kln_from_replicas_reorders_by_state():
    energies = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    states = np.array([[2, 0, 1], [0, 1, 2]])
    u_kln, n_k = u_kln_from_replicas(energies, states)
    assert u_kln.shape == (3, 3, 2)
    assert n_k.tolist() == [2, 2, 2]
    # iteration 0: state 0 held by replica 1, state 2 by replica 0
    assert u_kln[0, :, 0].tolist() == energies[0, 1].tolist()
    assert u_kln[2, :, 0].tolist() == energies[0, 0].tolist()
    assert u_kln[1, :, 1].tolist() == energies[1, 1].tolist()


def test_u_kln_from_replicas_unequal_visits_are_padded():
    energies = np.ones((3, 2, 2))
    states = np.array([[0, 0], [0, 1], [1, 0]])  # not a permutation: state 0 visited 4 times
    u_kln, n_k = u_kln_from_replicas(energies, states)
    assert n_k.tolist() == [4, 2]
    assert u_kln.shape == (2, 2, 4)


@pytest.mark.parametrize(
    ("energies", "states", "match"),
    [
        (np.zeros((4, 2, 3)), np.zeros((4, 2), int), "shape"),
        (np.zeros((4, 2, 2)), np.zeros((4, 3), int), "replica_states"),
        (np.zeros((4, 2, 2)), np.full((4, 2), 5), "0..1"),
        (np.full((4, 2, 2), np.nan), np.zeros((4, 2), int), "iteration 0"),
    ],
)
def test_bad_replica_arrays_raise_input_error(energies, states, match):
    with pytest.raises(InputError, match=match):
        u_kln_from_replicas(energies, states)


def test_mbar_matches_exact_oscillator_free_energy():
    rng = np.random.default_rng(7)
    u_kln = oscillator_u_kln(rng, SPRINGS, 2000)
    dg, err, f_k, _ = solve_mbar(u_kln)
    assert abs(dg - exact_dg_kt(SPRINGS)) < 2.0 * err
    assert np.allclose(f_k - f_k[0], 0.5 * np.log(SPRINGS / SPRINGS[0]), atol=5 * err)
    dg_bar, err_bar = bar_neighbours(u_kln)
    assert abs(dg_bar - exact_dg_kt(SPRINGS)) < 3 * err_bar


def test_mbar_uncertainty_is_calibrated_over_seeds():
    exact = exact_dg_kt(SPRINGS)
    z = []
    for seed in range(100):
        dg, err, _, _ = solve_mbar(oscillator_u_kln(np.random.default_rng(seed), SPRINGS, 200))
        z.append((dg - exact) / err)
    z = np.array(z)
    assert abs(z.mean()) < 0.35  # standard error of the mean of 100 unit normals is 0.1
    assert 0.7 < z.std(ddof=1) < 1.4


def test_analyse_leg_on_replica_arrays():
    rng = np.random.default_rng(3)
    energies, states = oscillator_replicas(rng, SPRINGS, 1500)
    windows = [{"lambda": k / (SPRINGS.size - 1)} for k in range(SPRINGS.size)]
    res = analyse_leg(energies, states, T, leg="solvent", n_bootstrap=30, lambda_windows=windows)
    assert isinstance(res, LegResult)
    exact = exact_dg_kt(SPRINGS) * KT
    assert abs(res.dg_kcal_mol - exact) < 2.0 * res.dg_err_kcal_mol
    assert abs(res.dg_bar_kcal_mol - exact) < 3 * res.dg_bar_err_kcal_mol
    assert res.n_states == 5 and res.n_iterations == 1500
    assert 0.5 < res.dg_bootstrap_err_kcal_mol / res.dg_err_kcal_mol < 2.0
    # independent samples: nothing to discard, no correlation
    assert res.statistical_inefficiency < 1.5
    assert res.n_effective > 1000
    overlap = np.array(res.overlap_matrix)
    assert overlap.shape == (5, 5) and np.allclose(overlap.sum(axis=1), 1.0)
    assert np.allclose(np.array(res.mixing_matrix).sum(axis=1), 1.0)
    assert res.round_trips > 100  # random permutations mix fast
    assert {v.name for v in res.verdicts} >= {"overlap", "mixing", "convergence", "equilibration", "bar_agreement"}
    assert all(v.status == "pass" for v in res.verdicts), res.verdicts
    assert res.convergence["fraction"][-1] == 1.0
    assert res.convergence["forward_dg"][-1] == pytest.approx(res.dg_kcal_mol, abs=1e-6)
    assert len(res.end_state_energy_series["A"]) == 1500
    assert res.state_labels[0] == "lambda=0"
    assert LegResult.model_validate_json(res.model_dump_json()) == res


def test_analyse_leg_discards_equilibration():
    rng = np.random.default_rng(5)
    energies, states = oscillator_replicas(rng, SPRINGS, 1000)
    energies[:100] += 50.0 * np.exp(-np.arange(100) / 20.0)[:, None, None]  # a relaxing start
    res = analyse_leg(energies, states, T, leg="complex")
    assert res.n_equilibration >= 40
    assert abs(res.dg_kcal_mol - exact_dg_kt(SPRINGS) * KT) < 3 * res.dg_err_kcal_mol


def test_analyse_leg_warns_on_poor_overlap_and_no_mixing():
    rng = np.random.default_rng(11)
    centres = np.array([0.0, 5.0])  # two unit wells 5 σ apart: almost no overlap
    n = 500
    states = np.tile([0, 1], (n, 1))  # replicas never exchange
    x = rng.normal(centres[states], 1.0)
    energies = 0.5 * (x[:, :, None] - centres[None, None, :]) ** 2
    res = analyse_leg(energies, states, T, leg="vacuum")
    status = {v.name: v.status for v in res.verdicts}
    assert res.overlap_matrix[0][1] < 0.03
    assert status["overlap"] in ("warn", "fail")
    assert status["mixing"] == "warn"
    assert res.round_trips == 0


def test_analyse_leg_rejects_bad_temperature():
    energies, states = oscillator_replicas(np.random.default_rng(0), SPRINGS, 10)
    with pytest.raises(InputError, match="temperature"):
        analyse_leg(energies, states, -1.0, leg="solvent")


def test_one_infinite_energy_is_refused_with_its_iteration():
    energies, states = oscillator_replicas(np.random.default_rng(0), SPRINGS, 50)
    energies[5, 0, 1] = np.inf
    with pytest.raises(InputError, match=r"leg solvent: non-finite reduced potential at iteration 5"):
        analyse_leg(energies, states, 298.15, leg="solvent")


def test_newton_mbar_equals_pymbar():
    from analysis.mbar import newton_mbar

    u_kln = oscillator_u_kln(np.random.default_rng(9), SPRINGS, 300)
    dg, err, f_k, _ = solve_mbar(u_kln)
    start = f_k + np.random.default_rng(1).normal(0, 0.05, size=f_k.size)  # a nearby start, as in a bootstrap
    dg_n, err_n, f_n = newton_mbar(u_kln, start)
    assert dg_n == pytest.approx(dg, abs=1e-7)
    assert np.allclose(f_n, f_k - f_k[0], atol=1e-7)
    assert err_n == pytest.approx(err, rel=1e-6)


def test_analyse_leg_passes_end_state_energies_and_reports_progress():
    energies, states = oscillator_replicas(np.random.default_rng(2), SPRINGS, 200)
    seen = []
    res = analyse_leg(
        energies,
        states,
        T,
        leg="solvent",
        n_bootstrap=5,
        end_state_energies={"A": [1.0, 2.0], "B": [3.0, 4.0]},
        progress=lambda stage, fraction: seen.append(stage),
    )
    assert res.end_state_energy_series == {"A": [1.0, 2.0], "B": [3.0, 4.0]}
    assert {"decorrelation", "mbar", "bootstrap", "convergence"} <= set(seen)
    assert res.n_bootstrap == 5


def correlated_replicas(rng: np.random.Generator, springs: np.ndarray, n_iter: int, rho: float, n_fast: int):
    """Replica k stays in state k; its slow coordinate x follows an AR(1) chain (correlation rho per iteration,
    exact Boltzmann marginal of state k), and it carries ``n_fast`` fast, state-independent degrees of freedom
    (fresh every iteration, like solvent): u_l = k_l x² / 2 + Σ y² / 2. The summed potential is dominated by the
    fast part and looks uncorrelated; ΔU, which the free energy is made of, depends on the slow x alone."""
    k = springs.size
    sigma = 1.0 / np.sqrt(springs)
    x = np.empty((n_iter, k))
    x[0] = rng.normal(0.0, sigma)
    noise = rng.normal(0.0, sigma * np.sqrt(1.0 - rho**2), size=(n_iter, k))
    for n in range(1, n_iter):
        x[n] = rho * x[n - 1] + noise[n]
    fast = 0.5 * rng.chisquare(n_fast, size=(n_iter, k))
    energies = 0.5 * springs[None, None, :] * x[:, :, None] ** 2 + fast[:, :, None]
    return energies, np.tile(np.arange(k), (n_iter, 1))


def test_per_state_inefficiency_sees_the_slow_coordinate_the_summed_potential_hides():
    from analysis.mbar import state_inefficiencies

    rho = 0.95  # x² then has correlation rho² per step: g = (1 + rho²) / (1 − rho²) ≈ 19.5
    energies, states = correlated_replicas(np.random.default_rng(0), SPRINGS, 20000, rho, n_fast=300)
    g = state_inefficiencies(energies, states)
    assert np.all((g > 12) & (g < 30)), g
    summed = energies[:, np.arange(SPRINGS.size), np.arange(SPRINGS.size)].sum(axis=1)
    import pymbar

    assert pymbar.timeseries.statistical_inefficiency(summed, fast=True) < 3  # what the old rule decorrelated by


def test_mbar_sigma_is_calibrated_on_autocorrelated_samples():
    """z = (ΔG − exact) / σ over independent correlated data sets is close to N(0, 1): σ accounts for the
    correlation of the slow coordinate (it would be ~4 times too small if decorrelated by the summed potential)."""
    exact = exact_dg_kt(SPRINGS) * KT
    z = []
    for seed in range(60):
        energies, states = correlated_replicas(np.random.default_rng(100 + seed), SPRINGS, 3000, 0.95, n_fast=300)
        res = analyse_leg(energies, states, T, leg="solvent", n_fractions=2)
        z.append((res.dg_kcal_mol - exact) / res.dg_err_kcal_mol)
    z = np.array(z)
    assert abs(z.mean()) < 0.45, z.mean()
    assert 0.7 < z.std(ddof=1) < 1.35, z.std(ddof=1)
