"""Free energy of one leg from replica-exchange data: equilibration detection, decorrelation, MBAR, a BAR
cross-check, an optional bootstrap and the diagnostics of :mod:`analysis.diagnostics`.

Array conventions (pymbar's index suffixes):

- ``energies`` : ndarray, shape (N_iter, K, K) — ``energies[n, r, l]`` reduced potential (kT) of replica r's
  configuration at iteration n evaluated at state l.
- ``replica_states`` : ndarray of int, shape (N_iter, K) — the state replica r was in at iteration n.
- ``u_kln`` : ndarray, shape (K, K, N) — ``u_kln[k, l, n]`` reduced potential at state l of the n-th sample
  drawn from state k; ``N_k`` : ndarray, shape (K,) — samples per state.

pymbar works in kT; results are converted to kcal/mol with kT = R·T, R = 1.98720426e-3 kcal/(mol·K).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from analysis import diagnostics as diag
from analysis.estimators import (
    bar_neighbours,
    bar_steps,
    check_replica_arrays,
    import_pymbar,
    newton_mbar,
    solve_mbar,
    u_kln_from_replicas,
)
from analysis.results import LegResult
from mlfep_core import AnalysisError, InputError
from mlfep_core.constants import kt_kcal_mol

__all__ = [
    "AnalysisError",
    "analyse_leg",
    "bar_neighbours",
    "kt_kcal_mol",
    "newton_mbar",
    "solve_mbar",
    "state_inefficiencies",
    "u_kln_from_replicas",
]

logger = logging.getLogger(__name__)


def _bootstrap(
    u_kln: np.ndarray, f_k: np.ndarray, n_bootstrap: int, seed: int, progress: Callable[[str, float], None] | None
) -> float:
    """Standard deviation (kT) of ΔG(0 → K−1) over bootstrap resamples of the decorrelated iterations.

    Iterations are resampled as a whole (all states of one iteration together), which keeps the correlation
    replica exchange creates between states of the same iteration.
    """
    rng = np.random.default_rng(seed)
    n = u_kln.shape[2]
    values = []
    for b in range(n_bootstrap):
        idx = rng.integers(0, n, size=n)
        try:
            values.append(newton_mbar(u_kln[:, :, idx], f_k)[0])
        except Exception as err:  # a degenerate resample: skip it
            logger.debug("bootstrap sample %d skipped: %s", b, err)
        if progress is not None and (b + 1) % max(1, n_bootstrap // 10) == 0:
            progress("bootstrap", (b + 1) / n_bootstrap)
    if len(values) < 2:
        return float("nan")
    return float(np.std(values, ddof=1))


def state_inefficiencies(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Statistical inefficiency of each state's ΔU series, the quantity MBAR's estimate is made of.

    For the sample drawn at state k in each iteration (whichever replica held it), ΔU_k = u_{k+1} − u_{k−1}
    (one-sided at the end states). Its correlation time is what the free-energy estimate inherits; the summed
    potential of all replicas is dominated by fast solvent degrees of freedom and can decorrelate far sooner.

    Parameters
    ----------
    u : ndarray, shape (N_iter, K, K)
        Reduced potentials, [iteration, replica, state].
    s : ndarray of int, shape (N_iter, K)
        State of each replica per iteration.

    Returns
    -------
    ndarray, shape (K,)
        g_k ≥ 1 (1 for a series with no variance, e.g. identical states).
    """
    pymbar = import_pymbar()
    n_iter, n_states = s.shape
    if n_states < 2 or n_iter < 4:
        return np.ones(n_states)
    replica_of_state = np.argsort(s, axis=1)
    u_state = u[np.arange(n_iter)[:, None], replica_of_state, :]  # (N, K state sampled, K evaluated)
    out = np.ones(n_states)
    for k in range(n_states):
        up, down = min(k + 1, n_states - 1), max(k - 1, 0)
        series = u_state[:, k, up] - u_state[:, k, down]
        try:
            out[k] = max(1.0, float(pymbar.timeseries.statistical_inefficiency(series)))
        except pymbar.utils.ParameterError:  # no variance: nothing correlated to account for
            out[k] = 1.0
    return out


def _labels(lambda_windows: Sequence[Mapping[str, float]] | None, n_states: int, leg: str) -> tuple[str, ...]:
    if lambda_windows is None:
        return ()
    if len(lambda_windows) != n_states:
        raise InputError(f"leg {leg}: {len(lambda_windows)} lambda windows for {n_states} states")
    return tuple(", ".join(f"{key}={value:g}" for key, value in window.items()) for window in lambda_windows)


# --------------------------------------------------------------------------------------------- a leg
def analyse_leg(
    energies: Any,
    replica_states: Any,
    temperature_k: float,
    *,
    leg: str,
    n_bootstrap: int = 0,
    end_state_energies: Mapping[str, Sequence[float]] | None = None,
    lambda_windows: Sequence[Mapping[str, float]] | None = None,
    n_fractions: int = 10,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> LegResult:
    """ΔG = G(B) − G(A) of one leg with MBAR, and its diagnostics.

    Steps: automatic equilibration detection on the summed reduced potential of all replicas at their current
    states (``pymbar.timeseries.detect_equilibration``), decorrelation of the rest by the largest statistical
    inefficiency of the per-state ΔU series (:func:`state_inefficiencies`; ``subsample_correlated_data``), MBAR on
    the kept iterations, BAR between neighbours as a
    cross-check, optional bootstrap, overlap / mixing / round trips / forward-reverse convergence verdicts.

    Parameters
    ----------
    energies : array_like, shape (N_iter, K, K)
        ``energies[n, r, l]``: reduced potential (kT) of replica r at iteration n evaluated at state l.
    replica_states : array_like of int, shape (N_iter, K)
        State of replica r at iteration n.
    temperature_k : float
        Temperature in kelvin.
    leg : str
        Leg name ('complex', 'solvent', 'vacuum'), used in the result and in error messages.
    n_bootstrap : int
        Bootstrap resamples of the decorrelated iterations (0 = none).
    end_state_energies : mapping of str to sequence of float, optional
        Time series to store as the end-state energies (e.g. potential energies the sampler recorded); by
        default the reduced potentials of the replicas at state 0 ('A') and state K−1 ('B').
    lambda_windows : sequence of mapping, optional
        The λ schedule (parameter → value per state) for labels.
    n_fractions : int
        Points of the forward/reverse convergence curves.
    seed : int
        Seed of the bootstrap.
    progress : callable(stage: str, fraction: float), optional
        Called as the work proceeds.

    Returns
    -------
    LegResult

    Raises
    ------
    InputError
        Wrong shapes or non-finite energies.
    AnalysisError
        MBAR gave no finite estimate.
    """
    pymbar = import_pymbar()
    if temperature_k is None or not (float(temperature_k) > 0):
        raise InputError(f"leg {leg}: temperature must be a positive number of kelvin, got {temperature_k}")
    if n_bootstrap < 0:
        raise InputError(f"leg {leg}: n_bootstrap must be ≥ 0, got {n_bootstrap}")
    u, s = check_replica_arrays(energies, replica_states, leg)
    n_iter, n_states = s.shape
    labels = _labels(lambda_windows, n_states, leg)
    kt = kt_kcal_mol(temperature_k)

    # equilibration on the summed reduced potential (each replica at its own state: a transient of any replica);
    # decorrelation by the slowest per-state ΔU series (what the estimate is made of), or the summed one if slower
    a_n = u[np.arange(n_iter)[:, None], np.arange(n_states)[None, :], s].sum(axis=1)
    n_skip = max(1, n_iter // 200)
    t0, g_sum, _ = pymbar.timeseries.detect_equilibration(a_n, fast=True, nskip=n_skip)
    t0 = int(t0)
    g_states = state_inefficiencies(u[t0:], s[t0:])
    g = max(1.0, float(g_sum), float(g_states.max()))
    keep = t0 + np.asarray(pymbar.timeseries.subsample_correlated_data(a_n[t0:], g=g), dtype=np.int64)
    if keep.size < 2:
        keep = np.arange(t0, n_iter)
    if progress is not None:
        progress("decorrelation", 1.0)
    u_kln, n_k = u_kln_from_replicas(u[keep], s[keep])
    if len(set(n_k.tolist())) != 1:
        # unequal visits: keep the general (padded) layout but do the bootstrap/convergence on the equal part
        logger.warning("leg %s: states visited unequally (%s samples); analysis uses padded u_kln", leg, n_k)

    # BAR between neighbours: the cross-check, and (summed) the starting point of the MBAR solver
    initial_f_k = None
    dg_bar: float | None
    err_bar: float | None
    try:
        steps, variances = bar_steps(u_kln, n_k)
        dg_bar, err_bar = float(steps.sum()), float(math.sqrt(variances.sum()))
        if math.isfinite(dg_bar) and math.isfinite(err_bar):
            initial_f_k = np.concatenate([[0.0], np.cumsum(steps)])
        else:
            dg_bar, err_bar = None, None
    except Exception as exc:
        logger.warning("leg %s: BAR cross-check failed: %s", leg, exc)
        dg_bar, err_bar = None, None

    polish = False
    if initial_f_k is not None and len(set(n_k.tolist())) == 1:
        try:  # Newton from the BAR start: pymbar then only confirms the solution
            initial_f_k = newton_mbar(u_kln, initial_f_k)[2]
            polish = True
        except Exception as exc:
            logger.debug("leg %s: Newton MBAR start failed: %s", leg, exc)
    try:
        dg, err, f_k, mbar = solve_mbar(u_kln, n_k, initial_f_k=initial_f_k, polish_only=polish)
    except Exception as exc:
        raise AnalysisError(f"leg {leg}: MBAR failed ({exc}); check the energies or add λ windows") from exc
    if not (math.isfinite(dg) and math.isfinite(err)):
        raise AnalysisError(f"leg {leg}: MBAR gave a non-finite ΔG; check the energies or add λ windows")
    overlap = np.asarray(mbar.compute_overlap()["matrix"], dtype=float)
    if progress is not None:
        progress("mbar", 1.0)

    equal = len(set(n_k.tolist())) == 1
    boot = None
    if n_bootstrap > 0 and equal:
        value = _bootstrap(u_kln, f_k, n_bootstrap, seed, progress)
        boot = value * kt if math.isfinite(value) else None
    convergence = diag.convergence_series(u_kln, kt, n_fractions=n_fractions, initial_f_k=f_k) if equal else {}
    if progress is not None:
        progress("convergence", 1.0)

    mixing = diag.mixing_matrix(s, n_states)
    trips = diag.count_round_trips(s, n_states)
    n_eff = float(keep.size)
    dg_kcal, err_kcal = dg * kt, err * kt
    bar_kcal = None if dg_bar is None else dg_bar * kt
    verdicts = (
        diag.overlap_verdict(overlap, labels),
        diag.mixing_verdict(mixing, trips, n_iter),
        diag.convergence_verdict(convergence),
        diag.equilibration_verdict(n_iter, t0, n_eff),
        diag.estimator_agreement_verdict(dg_kcal, err_kcal, bar_kcal),
    )
    if end_state_energies is not None:
        series = {str(k): [float(x) for x in np.asarray(v, dtype=float).ravel()] for k, v in end_state_energies.items()}
    else:
        series = diag.end_state_series(u, s)
    return LegResult(
        leg=leg,
        dg_kcal_mol=dg_kcal,
        dg_err_kcal_mol=err_kcal,
        dg_bar_kcal_mol=bar_kcal,
        dg_bar_err_kcal_mol=None if err_bar is None else err_bar * kt,
        dg_bootstrap_err_kcal_mol=boot,
        n_bootstrap=n_bootstrap if boot is not None else 0,
        n_states=n_states,
        n_iterations=n_iter,
        n_equilibration=t0,
        statistical_inefficiency=g,
        statistical_inefficiency_states=[float(x) for x in g_states],
        n_effective=n_eff,
        overlap_matrix=overlap.tolist(),
        mixing_matrix=mixing.tolist(),
        round_trips=trips,
        convergence=convergence,
        end_state_energy_series=series,
        state_dg_kcal_mol=[float(x) * kt for x in (f_k - f_k[0])],
        state_labels=labels,
        verdicts=verdicts,
        temperature_k=float(temperature_k),
    )
