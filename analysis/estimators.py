"""The estimators under every leg's analysis: replica data to ``u_kln``, MBAR (pymbar's solver, with a damped
Newton fallback), BAR between neighbouring states. :mod:`analysis.mbar` (the leg analysis) and
:mod:`analysis.diagnostics` (convergence series) both build on them.

Array conventions as in :mod:`analysis.mbar`: ``u_kln[k, l, n]`` is the reduced potential (kT) at state l of the
n-th sample drawn from state k, ``n_k`` the samples per state.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from mlfep_core import InputError

__all__ = ["bar_neighbours", "newton_mbar", "solve_mbar", "u_kln_from_replicas"]

logger = logging.getLogger(__name__)


def import_pymbar():
    """pymbar with the estimators used here (its 'JAX not found' banner is quietened by
    :func:`mlfep_core.runtime.configure_process`)."""
    import pymbar
    import pymbar.other_estimators
    import pymbar.timeseries

    return pymbar


# ----------------------------------------------------------------------------------------- conversion
def check_replica_arrays(energies: Any, replica_states: Any, leg: str = "") -> tuple[np.ndarray, np.ndarray]:
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
    u, s = check_replica_arrays(energies, replica_states)
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


def kln_to_kn(u_kln: np.ndarray, n_k: np.ndarray) -> np.ndarray:
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
    pymbar = import_pymbar()
    n_states = u_kln.shape[0]
    if n_k is None:
        n_k = np.full(n_states, u_kln.shape[2], dtype=np.int64)
    protocol = (dict(method="adaptive", options=dict(min_sc_iter=0)),) if polish_only else None
    mbar = pymbar.MBAR(kln_to_kn(u_kln, n_k), n_k, initial_f_k=initial_f_k, solver_protocol=protocol)
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
    u_kn = kln_to_kn(u_kln, np.full(n_states, n))
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
    steps, variances = bar_steps(u_kln, n_k)
    return float(steps.sum()), float(math.sqrt(variances.sum()))


def bar_steps(u_kln: np.ndarray, n_k: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BAR ΔG (kT) and its variance for each neighbour pair k → k+1, shape (K−1,) each."""
    pymbar = import_pymbar()
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
