"""State mixing for Hamiltonian replica exchange: all-pairs (Gibbs) Metropolis swaps, vectorised."""

from __future__ import annotations

import numpy as np

__all__ = ["gibbs_swaps"]


def gibbs_swaps(
    u_kl: np.ndarray, replica_states: np.ndarray, rng: np.random.Generator, n_attempts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix states among replicas by Metropolis pair swaps (detailed balance for every pair).

    Each sweep draws a random perfect matching of the states and attempts all its (disjoint, hence
    independent) pair swaps at once; sweeps repeat until ``n_attempts`` pairs were proposed.

    Parameters
    ----------
    u_kl : ndarray, shape (K, K)
        Reduced potential of replica k in state l (kT).
    replica_states : ndarray, shape (K,)
        State of each replica before mixing.
    rng : numpy.random.Generator
        Random stream (advanced).
    n_attempts : int
        Pair swaps to attempt.

    Returns
    -------
    new_states : ndarray, shape (K,)
        State of each replica after mixing.
    accepted, proposed : ndarray, shape (K, K)
        Accepted and proposed swaps per state pair (symmetric, int64).
    """
    n_states = len(replica_states)
    accepted = np.zeros((n_states, n_states), dtype=np.int64)
    proposed = np.zeros((n_states, n_states), dtype=np.int64)
    half = n_states // 2
    if half == 0 or n_attempts <= 0:
        return np.array(replica_states, copy=True), accepted, proposed
    replica_of_state = np.argsort(replica_states)
    n_sweeps = -(-n_attempts // half)
    perms = rng.permuted(np.tile(np.arange(n_states), (n_sweeps, 1)), axis=1)
    log_r = np.log(rng.random((n_sweeps, half)))
    for sweep in range(n_sweeps):
        a = perms[sweep, 0 : 2 * half : 2]
        b = perms[sweep, 1 : 2 * half : 2]
        ra = replica_of_state[a]
        rb = replica_of_state[b]
        delta = u_kl[ra, b] + u_kl[rb, a] - u_kl[ra, a] - u_kl[rb, b]
        with np.errstate(invalid="ignore"):
            ok = log_r[sweep] < -delta  # NaN never accepted
        proposed[a, b] += 1
        proposed[b, a] += 1
        if ok.any():
            accepted[a[ok], b[ok]] += 1
            accepted[b[ok], a[ok]] += 1
            replica_of_state[a[ok]] = rb[ok]
            replica_of_state[b[ok]] = ra[ok]
    return np.argsort(replica_of_state), accepted, proposed
