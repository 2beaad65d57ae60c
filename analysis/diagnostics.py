"""Diagnostics of one leg: MBAR overlap, replica state mixing and round trips, forward/reverse convergence,
end-state energy time series. Each check returns a :class:`~analysis.results.Verdict`.

Array conventions (pymbar's index suffixes):

- ``energies`` : ndarray, shape (N_iter, K, K) — ``energies[n, r, l]`` reduced potential (kT) of replica r's
  configuration at iteration n evaluated at state l.
- ``replica_states`` : ndarray of int, shape (N_iter, K) — the state replica r was in at iteration n.
- ``u_kln`` : ndarray, shape (K, K, N) — ``u_kln[k, l, n]`` reduced potential at state l of the n-th sample
  drawn from state k.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from analysis.results import Verdict

__all__ = [
    "OVERLAP_FAIL",
    "OVERLAP_WARN",
    "convergence_series",
    "convergence_verdict",
    "count_round_trips",
    "end_state_series",
    "equilibration_verdict",
    "estimator_agreement_verdict",
    "mixing_matrix",
    "mixing_verdict",
    "overlap_verdict",
]

logger = logging.getLogger(__name__)

#: A neighbour overlap below this gives a warning (Klimovich, Shirts & Mobley 2015 recommend ≥ 0.03).
OVERLAP_WARN = 0.03
#: A neighbour overlap below this fails: MBAR has essentially no samples linking the two states.
OVERLAP_FAIL = 1e-3


# ------------------------------------------------------------------------------------------- overlap
def overlap_verdict(overlap: np.ndarray, labels: tuple[str, ...] = ()) -> Verdict:
    """Check the off-diagonal neighbour elements of the MBAR overlap matrix.

    Parameters
    ----------
    overlap : ndarray, shape (K, K)
        MBAR overlap matrix (rows sum to 1).
    labels : tuple of str, optional
        A label per state for the message.

    Returns
    -------
    Verdict
        'warn' when a neighbour overlap is below :data:`OVERLAP_WARN`, 'fail' below :data:`OVERLAP_FAIL`.
    """
    overlap = np.asarray(overlap, dtype=float)
    n_states = overlap.shape[0]
    if n_states < 2:
        return Verdict(name="overlap", status="pass", message="a single state: nothing to overlap")
    neighbours = np.array([overlap[k, k + 1] for k in range(n_states - 1)])
    k_min = int(np.argmin(neighbours))
    worst = float(neighbours[k_min])
    where = f"states {k_min}-{k_min + 1}"
    if labels:
        where += f" ({labels[k_min]} | {labels[k_min + 1]})"
    low = [k for k, value in enumerate(neighbours) if value < OVERLAP_WARN]
    if worst < OVERLAP_FAIL:
        status = "fail"
    elif low:
        status = "warn"
    else:
        status = "pass"
    message = f"smallest neighbour overlap {worst:.3g} between {where}"
    if low:
        message += f"; {len(low)} pair(s) below {OVERLAP_WARN}: add λ windows there"
    return Verdict(name="overlap", status=status, message=message)


# -------------------------------------------------------------------------------------------- mixing
def mixing_matrix(replica_states: np.ndarray, n_states: int) -> np.ndarray:
    """Empirical state-transition matrix of the replicas between consecutive iterations.

    Parameters
    ----------
    replica_states : ndarray of int, shape (N_iter, R)
        State of replica r at iteration n.
    n_states : int
        Number of states K.

    Returns
    -------
    ndarray, shape (K, K)
        ``T[i, j]`` = fraction of the moves out of state i that went to state j (rows sum to 1, or 0 if the
        state was never left from).
    """
    states = np.asarray(replica_states, dtype=np.int64)
    counts = np.zeros((n_states, n_states))
    if states.shape[0] >= 2:
        np.add.at(counts, (states[:-1].ravel(), states[1:].ravel()), 1.0)
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)


def count_round_trips(replica_states: np.ndarray, n_states: int) -> int:
    """Number of completed round trips 0 → K−1 → 0, summed over replicas.

    Parameters
    ----------
    replica_states : ndarray of int, shape (N_iter, R)
        State of replica r at iteration n.
    n_states : int
        Number of states K.

    Returns
    -------
    int
    """
    states = np.asarray(replica_states, dtype=np.int64)
    top = n_states - 1
    total = 0
    for series in states.T:
        ends = series[(series == 0) | (series == top)]
        if ends.size == 0:
            continue
        keep = np.ones(ends.size, dtype=bool)
        keep[1:] = ends[1:] != ends[:-1]
        ends = ends[keep]  # alternating 0 / K-1
        first_zero = np.flatnonzero(ends == 0)
        if first_zero.size == 0:
            continue
        total += int(np.count_nonzero(ends[first_zero[0] :] == 0)) - 1
    return total


def mixing_verdict(mixing: np.ndarray, round_trips: int, n_iterations: int) -> Verdict:
    """Warn when replicas do not travel: no round trip, or a neighbour pair that (almost) never exchanges.

    Parameters
    ----------
    mixing : ndarray, shape (K, K)
        State-transition matrix from :func:`mixing_matrix`.
    round_trips : int
        From :func:`count_round_trips`.
    n_iterations : int
        Iterations the counts come from.
    """
    mixing = np.asarray(mixing, dtype=float)
    n_states = mixing.shape[0]
    if n_states < 2:
        return Verdict(name="mixing", status="pass", message="a single state")
    exchange = np.array([min(mixing[k, k + 1], mixing[k + 1, k]) for k in range(n_states - 1)])
    k_min = int(np.argmin(exchange))
    message = (
        f"{round_trips} round trip(s) in {n_iterations} iterations; "
        f"smallest neighbour exchange probability {exchange[k_min]:.3g} (states {k_min}-{k_min + 1})"
    )
    if exchange[k_min] < 0.01:
        return Verdict(name="mixing", status="warn", message=message + ": replicas are stuck there")
    if round_trips == 0:
        return Verdict(name="mixing", status="warn", message=message + ": no replica crossed from A to B and back")
    return Verdict(name="mixing", status="pass", message=message)


# ---------------------------------------------------------------------------------------- convergence
def convergence_series(
    u_kln: np.ndarray,
    kt_kcal_mol: float,
    *,
    n_fractions: int = 10,
    initial_f_k: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """MBAR ΔG(0 → K−1) on growing fractions of the data, from the start (forward) and from the end (reverse).

    Parameters
    ----------
    u_kln : ndarray, shape (K, K, N)
        Decorrelated reduced potentials, samples in time order.
    kt_kcal_mol : float
        kT in kcal/mol.
    n_fractions : int
        Fractions 1/n, 2/n, …, 1.
    initial_f_k : ndarray, shape (K,), optional
        A starting guess (the full-data free energies) to speed up the solver.

    Returns
    -------
    dict
        'fraction', 'forward_dg', 'forward_err', 'reverse_dg', 'reverse_err' (kcal/mol); fractions whose MBAR
        solve failed or gave no finite value are left out of every list.
    """
    from analysis.estimators import newton_mbar, solve_mbar

    n_samples = u_kln.shape[2]
    out: dict[str, list[float]] = {
        k: [] for k in ("fraction", "forward_dg", "forward_err", "reverse_dg", "reverse_err")
    }
    for i in range(1, n_fractions + 1):
        fraction = i / n_fractions
        n = max(2, round(fraction * n_samples))
        if n > n_samples:
            continue
        try:
            if initial_f_k is not None:
                fwd = newton_mbar(u_kln[:, :, :n], initial_f_k)
                rev = newton_mbar(u_kln[:, :, n_samples - n :], initial_f_k)
            else:
                fwd = solve_mbar(u_kln[:, :, :n])[:3]
                rev = solve_mbar(u_kln[:, :, n_samples - n :])[:3]
        except Exception as err:  # a tiny subset can make the solver fail: leave the point out
            logger.debug("convergence fraction %.2f skipped: %s", fraction, err)
            continue
        values = (fwd[0], fwd[1], rev[0], rev[1])
        if not all(math.isfinite(v) for v in values):
            continue
        out["fraction"].append(fraction)
        out["forward_dg"].append(fwd[0] * kt_kcal_mol)
        out["forward_err"].append(fwd[1] * kt_kcal_mol)
        out["reverse_dg"].append(rev[0] * kt_kcal_mol)
        out["reverse_err"].append(rev[1] * kt_kcal_mol)
    return out


def convergence_verdict(series: dict[str, list[float]], *, n_sigma: float = 2.0, floor: float = 0.1) -> Verdict:
    """Compare the first and the last half of the data (forward and reverse at fraction 0.5).

    The two halves are disjoint, so their difference has σ = sqrt(σ_f² + σ_r²); warn when they differ by more
    than ``n_sigma`` σ and more than ``floor`` kcal/mol.
    """
    fractions = series.get("fraction", [])
    if not fractions:
        return Verdict(name="convergence", status="warn", message="no forward/reverse estimate could be computed")
    i = int(np.argmin([abs(f - 0.5) for f in fractions]))
    fwd, rev = series["forward_dg"][i], series["reverse_dg"][i]
    sigma = math.hypot(series["forward_err"][i], series["reverse_err"][i])
    diff = abs(fwd - rev)
    message = (
        f"first {fractions[i]:.0%}: {fwd:.2f}, last {fractions[i]:.0%}: {rev:.2f} kcal/mol "
        f"(difference {diff:.2f} ± {sigma:.2f})"
    )
    if diff > n_sigma * sigma and diff > floor:
        return Verdict(name="convergence", status="warn", message=message + ": not converged, extend sampling")
    return Verdict(name="convergence", status="pass", message=message)


def estimator_agreement_verdict(dg_mbar: float, err_mbar: float, dg_bar: float | None) -> Verdict:
    """MBAR vs the sum of neighbour BAR estimates (kcal/mol): warn beyond max(2σ, 0.2 kcal/mol)."""
    if dg_bar is None or not math.isfinite(dg_bar):
        return Verdict(name="bar_agreement", status="warn", message="BAR cross-check not available")
    diff = abs(dg_mbar - dg_bar)
    tol = max(2.0 * err_mbar, 0.2)
    message = f"MBAR {dg_mbar:.2f} vs BAR {dg_bar:.2f} kcal/mol (difference {diff:.2f}, tolerance {tol:.2f})"
    return Verdict(name="bar_agreement", status="warn" if diff > tol else "pass", message=message)


def equilibration_verdict(n_iterations: int, n_equilibration: int, n_effective: float) -> Verdict:
    """Warn when more than half the run is equilibration or fewer than 50 uncorrelated samples per state remain."""
    message = (
        f"{n_equilibration} of {n_iterations} iterations discarded as equilibration; "
        f"{n_effective:.0f} uncorrelated samples per state"
    )
    if n_effective < 50 or n_equilibration > 0.5 * n_iterations:
        return Verdict(name="equilibration", status="warn", message=message + ": extend sampling")
    return Verdict(name="equilibration", status="pass", message=message)


# ------------------------------------------------------------------------------------ energy series
def end_state_series(energies: np.ndarray, replica_states: np.ndarray) -> dict[str, list[float]]:
    """Per-iteration reduced potential (kT) of the replica sitting at state A (0) and at state B (K−1).

    Parameters
    ----------
    energies : ndarray, shape (N_iter, K, K)
    replica_states : ndarray of int, shape (N_iter, K)

    Returns
    -------
    dict
        'A' and 'B': lists of length N_iter.
    """
    energies = np.asarray(energies, dtype=float)
    states = np.asarray(replica_states, dtype=np.int64)
    n_states = energies.shape[2]
    out: dict[str, list[float]] = {}
    rows = np.arange(states.shape[0])
    for key, state in (("A", 0), ("B", n_states - 1)):
        at_state = states == state
        has = at_state.any(axis=1)
        replica = np.argmax(at_state, axis=1)
        series = energies[rows, replica, state]
        out[key] = [float(v) for v in np.where(has, series, np.nan) if math.isfinite(v)]
    return out
