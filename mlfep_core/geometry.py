"""Rigid-body superposition (numpy only): used to place one ligand on another and to compare poses."""

from __future__ import annotations

import numpy as np

__all__ = ["kabsch"]


def kabsch(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``r`` and translation ``t`` minimising |mobile @ r.T + t - target| (both shape (n, 3)).

    One point: a translation. Two points: the rotation that aligns the two segments (the turn about their axis is
    left as the SVD gives it). Proper rotations only (no reflection).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> r, t = kabsch(a + 2.0, a)
    >>> bool(np.allclose((a + 2.0) @ r.T + t, a))
    True
    """
    mobile, target = np.asarray(mobile, dtype=float), np.asarray(target, dtype=float)
    c_m, c_t = mobile.mean(axis=0), target.mean(axis=0)
    if len(mobile) < 2:
        return np.eye(3), c_t - c_m
    h = (mobile - c_m).T @ (target - c_t)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, c_t - c_m @ r.T
