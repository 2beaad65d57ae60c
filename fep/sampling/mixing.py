"""State mixing for Hamiltonian replica exchange: all-pairs (Gibbs) Metropolis swaps.

The chain of swap attempts is sequential by nature (each attempt sees the result of the previous one), so the
random numbers and the bookkeeping are drawn and counted with numpy in bulk while the Metropolis chain itself
runs on Python scalars: about 1 µs per attempt, several times faster than numpy operations on tiny arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gibbs_swaps"]


def gibbs_swaps(
    u_kl: np.ndarray, replica_states: np.ndarray, rng: np.random.Generator, n_attempts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix states among replicas by Metropolis swaps of random state pairs (detailed balance for every pair).

    Each attempt picks an unordered pair of distinct states uniformly at random and swaps the replicas that
    hold them with probability min(1, exp(-Δ)), Δ = u_i(s_j) + u_j(s_i) - u_i(s_i) - u_j(s_j).

    Parameters
    ----------
    u_kl : ndarray, shape (K, K)
        Reduced potential of replica k in state l (kT).
    replica_states : ndarray, shape (K,)
        State of each replica before mixing (a permutation of 0..K-1).
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
    if n_states < 2 or n_attempts <= 0:
        return np.array(replica_states, copy=True), accepted, proposed
    first = rng.integers(0, n_states, size=n_attempts)
    second = rng.integers(0, n_states - 1, size=n_attempts)
    second += second >= first  # uniform over the other states
    log_r = np.log(rng.random(n_attempts))
    replica_of_state = np.argsort(replica_states).tolist()
    u = np.asarray(u_kl, dtype=np.float64).tolist()
    taken = []
    for index, (a, b, lr) in enumerate(zip(first.tolist(), second.tolist(), log_r.tolist(), strict=True)):
        ra = replica_of_state[a]
        rb = replica_of_state[b]
        row_a = u[ra]
        row_b = u[rb]
        if lr < row_a[a] + row_b[b] - row_a[b] - row_b[a]:  # log r < -Δ; False for NaN
            replica_of_state[a] = rb
            replica_of_state[b] = ra
            taken.append(index)
    flat = first * n_states + second
    counts = np.bincount(flat, minlength=n_states * n_states).reshape(n_states, n_states)
    proposed += counts + counts.T
    if taken:
        counts = np.bincount(flat[taken], minlength=n_states * n_states).reshape(n_states, n_states)
        accepted += counts + counts.T
    return np.argsort(replica_of_state), accepted, proposed
