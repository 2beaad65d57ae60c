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
from analysis.results import LegResult
from ligand_prep.base import InputError, MlfepError

__all__ = [
    "R_KCAL_MOL_K",
    "AnalysisError",
    "analyse_leg",
    "bar_neighbours",
    "kt_kcal_mol",
    "newton_mbar",
    "solve_mbar",
    "u_kln_from_replicas",
]

logger = logging.getLogger(__name__)

#: Gas constant in kcal/(mol·K).
R_KCAL_MOL_K = 1.98720426e-3


class AnalysisError(MlfepError, RuntimeError):
    """The estimator could not produce a number from the data (names the leg and what to do)."""


def kt_kcal_mol(temperature_k: float) -> float:
    """kT in kcal/mol at ``temperature_k`` kelvin."""
    return R_KCAL_MOL_K * float(temperature_k)


def _pymbar():
    """Import pymbar quietly (its import logs a 'JAX not found' banner)."""
    for name in ("pymbar.mbar_solvers", "pymbar.timeseries"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import pymbar
    import pymbar.other_estimators
    import pymbar.timeseries

    return pymbar


# ----------------------------------------------------------------------------------------- conversion
def _check_replica_arrays(energies: Any, replica_states: Any, leg: str = "") -> tuple[np.ndarray, np.ndarray]:
    where = f"leg {leg}: " if leg else ""
    u = np.asarray(energies, dtype=np.float64)
    s = np.asarray(replica_states)
    if u.ndim != 3 or u.shape[1] != u.shape[2]:
        raise InputError(f"{where}energies must have shape (N_iter, K, K), got {u.shape}")
    if s.shape != u.shape[:2]:
        raise InputError(f"{where}replica_states must have shape {u.shape[:2]} (N_iter, K), got {s.shape}")
    if u.shape[0] < 2 or u.shape[1] < 2:
        raise InputError(f"{where}need at least 2 iterations and 2 states, got {u.shape[0]} and {u.shape[1]}")
    if not np.issubdtype(s.dtype, np.integer):
        if not np.all(np.isfinite(s)) or not np.all(s == np.round(s)):
            raise InputError(f"{where}replica_states must hold integer state indices")
        s = s.astype(np.int64)
    n_states = u.shape[1]
    if s.min() < 0 or s.max() >= n_states:
        raise InputError(f"{where}replica_states must be in 0..{n_states - 1}, found {s.min()}..{s.max()}")
    bad = ~np.isfinite(u).all(axis=(1, 2))
    if bad.any():
        raise InputError(
            f"{where}non-finite reduced potential at iteration {int(np.argmax(bad))} "
            f"({int(bad.sum())} iteration(s)): re-run or truncate the leg before analysing it"
        )
    return u, s.astype(np.int64)


def u_kln_from_replicas(energies: Any, replica_states: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reorder replica-exchange energies by the state each sample was drawn from.

    Parameters
    ----------
    energies : array_like, shape (N_iter, K, K)
        ``energies[n, r, l]``: reduced potential (kT) of replica r's configuration at iteration n at state l.
    replica_states : array_like of int, shape (N_iter, K)
        ``replica_states[n, r]``: the state replica r was in at iteration n.

    Returns
    -------
    u_kln : ndarray, shape (K, K, N)
        ``u_kln[k, l, n]``: reduced potential at state l of the n-th sample drawn from state k; zero-padded
        beyond ``N_k[k]`` when states were visited unequally (the usual replica exchange, one replica per state
        per iteration, gives N = N_iter for every state).
    N_k : ndarray of int, shape (K,)
        Number of samples drawn from each state.

    Raises
    ------
    InputError
        Wrong shapes, state indices out of range or non-finite energies.

    Examples
    --------
    >>> import numpy as np
    >>> energies = np.arange(8.0).reshape(2, 2, 2)      # 2 iterations, 2 replicas, 2 states
    >>> states = np.array([[0, 1], [1, 0]])             # the replicas swap at iteration 1
    >>> u_kln, N_k = u_kln_from_replicas(energies, states)
    >>> u_kln[0, :, 1].tolist()                          # state 0 at iteration 1 was replica 1
    [6.0, 7.0]
    >>> N_k.tolist()
    [2, 2]
    """
    u, s = _check_replica_arrays(energies, replica_states)
    n_iter, n_states = s.shape
    if np.array_equal(np.sort(s, axis=1), np.broadcast_to(np.arange(n_states), s.shape)):
        replica_of_state = np.argsort(s, axis=1)  # (N_iter, K): which replica sat at state k
        u_nkl = u[np.arange(n_iter)[:, None], replica_of_state, :]  # (N_iter, K, K)
        return np.ascontiguousarray(u_nkl.transpose(1, 2, 0)), np.full(n_states, n_iter, dtype=np.int64)
    # general case: any number of replicas per state at an iteration
    flat_u = u.reshape(-1, n_states)
    flat_s = s.ravel()
    n_k = np.bincount(flat_s, minlength=n_states)
    u_kln = np.zeros((n_states, n_states, int(n_k.max())))
    for k in range(n_states):
        rows = flat_u[flat_s == k]
        u_kln[k, :, : rows.shape[0]] = rows.T
    return u_kln, n_k.astype(np.int64)


def _kln_to_kn(u_kln: np.ndarray, n_k: np.ndarray) -> np.ndarray:
    """u_kln (K, K, N) → u_kn (K, ΣN_k): column blocks of samples from state 0, 1, …"""
    return np.concatenate([u_kln[k, :, : n_k[k]] for k in range(u_kln.shape[0])], axis=1)


# ------------------------------------------------------------------------------------------ estimators
def solve_mbar(
    u_kln: np.ndarray,
    n_k: np.ndarray | None = None,
    *,
    initial_f_k: np.ndarray | None = None,
    polish_only: bool = False,
) -> tuple[float, float, np.ndarray, Any]:
    """MBAR on ``u_kln``: ΔG(0 → K−1) and its analytic σ in kT, all f_k, and the pymbar MBAR object.

    Parameters
    ----------
    u_kln : ndarray, shape (K, K, N)
    n_k : ndarray of int, shape (K,), optional
        Samples per state (default N for all).
    initial_f_k : ndarray, shape (K,), optional
        Starting free energies for the solver.
    polish_only : bool
        ``initial_f_k`` is already the solution (e.g. from :func:`newton_mbar`): run only pymbar's adaptive
        Newton/self-consistent step, which stops at once when the gradient is already small.
    """
    pymbar = _pymbar()
    n_states = u_kln.shape[0]
    if n_k is None:
        n_k = np.full(n_states, u_kln.shape[2], dtype=np.int64)
    protocol = (dict(method="adaptive", options=dict(min_sc_iter=0)),) if polish_only else None
    mbar = pymbar.MBAR(_kln_to_kn(u_kln, n_k), n_k, initial_f_k=initial_f_k, solver_protocol=protocol)
    res = mbar.compute_free_energy_differences()
    return float(res["Delta_f"][0, -1]), float(res["dDelta_f"][0, -1]), np.asarray(mbar.f_k, dtype=float), mbar


def newton_mbar(
    u_kln: np.ndarray, initial_f_k: np.ndarray, *, tol: float = 1e-10, max_iterations: int = 30
) -> tuple[float, float, np.ndarray]:
    """MBAR by Newton-Raphson from a good starting point, with the asymptotic σ (Shirts & Chodera 2008).

    Used for the many solves of the bootstrap and the convergence curves, where the full-data free energies
    are an excellent start (2-4 iterations); it minimises the convex MBAR objective
    ``F(f) = Σ_n ln Σ_k N_k exp(f_k − u_kn) − Σ_k N_k f_k`` with f_0 = 0, and computes the covariance with the
    eigen-decomposition form of Appendix D (pymbar's default 'svd-ew'). Falls back to :func:`solve_mbar` when
    it does not converge.

    Parameters
    ----------
    u_kln : ndarray, shape (K, K, N)
        Equal number of samples N from every state.
    initial_f_k : ndarray, shape (K,)
        Starting free energies (kT).

    Returns
    -------
    dg : float
        f_{K−1} − f_0 in kT.
    err : float
        Its asymptotic standard error in kT.
    f_k : ndarray, shape (K,)
    """
    n_states, _, n = u_kln.shape
    n_k = np.full(n_states, float(n))
    u_kn = _kln_to_kn(u_kln, np.full(n_states, n))
    log_n = np.log(n_k)
    f = np.asarray(initial_f_k, dtype=float) - float(initial_f_k[0])
    converged = False
    for _ in range(max_iterations):
        a = (f + log_n)[:, None] - u_kn
        a -= a.max(axis=0)
        np.exp(a, out=a)  # N_k exp(f_k − u_kn), scaled per sample
        w = a / (a.sum(axis=0) * n_k[:, None])  # (K, ΣN): w_kn = exp(f_k − u_kn) / Σ_j N_j exp(f_j − u_jn)
        s = w.sum(axis=1)
        if np.max(np.abs(s - 1.0)) < tol:
            converged = True
            break
        grad = n_k * (s - 1.0)
        nw = n_k[:, None] * w
        hess = np.diag(n_k * s) - nw @ nw.T
        try:
            step = np.linalg.solve(hess[1:, 1:], grad[1:])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        f[1:] -= step
    if not converged:
        dg, err, f_k, _ = solve_mbar(u_kln, initial_f_k=initial_f_k)
        return dg, err, f_k
    # asymptotic covariance Θ = V Σ (I − Σ Vᵀ N V Σ)⁺ Σ Vᵀ from the eigen-decomposition of WᵀW
    s2, v = np.linalg.eigh(w @ w.T)
    sigma = np.diag(np.sqrt(np.clip(s2, 0.0, None)))
    inner = np.eye(n_states) - sigma @ v.T @ np.diag(n_k) @ v @ sigma
    theta = v @ sigma @ np.linalg.pinv(inner) @ sigma @ v.T
    var = theta[0, 0] + theta[-1, -1] - 2.0 * theta[0, -1]
    return float(f[-1] - f[0]), float(np.sqrt(max(var, 0.0))), f


def bar_neighbours(u_kln: np.ndarray, n_k: np.ndarray | None = None) -> tuple[float, float]:
    """Sum of BAR ΔG between neighbouring states (kT) and its σ (neighbour estimates taken as independent).

    Parameters
    ----------
    u_kln : ndarray, shape (K, K, N)
    n_k : ndarray of int, shape (K,), optional
    """
    steps, variances = _bar_steps(u_kln, n_k)
    return float(steps.sum()), float(math.sqrt(variances.sum()))


def _bar_steps(u_kln: np.ndarray, n_k: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BAR ΔG (kT) and its variance for each neighbour pair k → k+1, shape (K−1,) each."""
    pymbar = _pymbar()
    n_states = u_kln.shape[0]
    if n_k is None:
        n_k = np.full(n_states, u_kln.shape[2], dtype=np.int64)
    steps, variances = np.zeros(n_states - 1), np.zeros(n_states - 1)
    for k in range(n_states - 1):
        w_f = u_kln[k, k + 1, : n_k[k]] - u_kln[k, k, : n_k[k]]
        w_r = u_kln[k + 1, k, : n_k[k + 1]] - u_kln[k + 1, k + 1, : n_k[k + 1]]
        with np.errstate(all="ignore"):
            res = pymbar.other_estimators.bar(w_f, w_r, compute_uncertainty=True)
        steps[k] = float(res["Delta_f"])
        variances[k] = float(res["dDelta_f"]) ** 2
    return steps, variances


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
    states (``pymbar.timeseries.detect_equilibration``), decorrelation of the rest by its statistical
    inefficiency (``subsample_correlated_data``), MBAR on the kept iterations, BAR between neighbours as a
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
    pymbar = _pymbar()
    if temperature_k is None or not (float(temperature_k) > 0):
        raise InputError(f"leg {leg}: temperature must be a positive number of kelvin, got {temperature_k}")
    if n_bootstrap < 0:
        raise InputError(f"leg {leg}: n_bootstrap must be ≥ 0, got {n_bootstrap}")
    u, s = _check_replica_arrays(energies, replica_states, leg)
    n_iter, n_states = s.shape
    labels = _labels(lambda_windows, n_states, leg)
    kt = kt_kcal_mol(temperature_k)

    # equilibration and decorrelation on the summed reduced potential (each replica at its own state)
    a_n = u[np.arange(n_iter)[:, None], np.arange(n_states)[None, :], s].sum(axis=1)
    n_skip = max(1, n_iter // 200)
    t0, g, _ = pymbar.timeseries.detect_equilibration(a_n, fast=True, nskip=n_skip)
    t0, g = int(t0), max(1.0, float(g))
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
    try:
        steps, variances = _bar_steps(u_kln, n_k)
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
