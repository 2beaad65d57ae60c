"""Reduced-potential matrices for MBAR from energy components: ``u_kn = β (components @ coefficients.T + pV)``.

Every state k is a linear combination of energy components c (e.g. ``U_k = U_MM + λ_k ΔU`` has components
(U_MM, ΔU) and coefficients (1, λ_k)), so the whole (K, N) matrix is one matrix product on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpu_kernels._torch import as_tensor, resolve_device

__all__ = ["reduced_potential_matrix", "reduced_potential_matrix_reference"]


def _validate(components: Any, coefficients: Any, pv: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    from mlfep_core import InputError

    cshape = tuple(np.shape(components))
    kshape = tuple(np.shape(coefficients))
    if len(cshape) != 2 or len(kshape) != 2 or cshape[1] != kshape[1]:
        raise InputError(
            f"components must be (F, C) and coefficients (K, C) with the same C; got {cshape} and {kshape}"
        )
    if pv is not None and tuple(np.shape(pv)) != (cshape[0],):
        raise InputError(f"pv must have shape ({cshape[0]},), got {tuple(np.shape(pv))}")
    return cshape, kshape


def reduced_potential_matrix(
    components: Any, coefficients: Any, beta: float, pv: Any = None, device: Any = None
) -> np.ndarray:
    """Reduced potentials of every frame in every state.

    Parameters
    ----------
    components : array, shape (F, C)
        Energy components of each frame, kJ/mol.
    coefficients : array, shape (K, C)
        State k's energy is ``components @ coefficients[k]``.
    beta : float
        1/kT in mol/kJ.
    pv : array, shape (F,), optional
        p·V of each frame in kJ/mol (NPT); added to every state.
    device : optional
        torch device (default CUDA when available, else CPU). Computed in float64.

    Returns
    -------
    u_kn : ndarray, shape (K, F)
        Reduced potentials (dimensionless), float64.
    """
    import torch

    _validate(components, coefficients, pv)
    dev = resolve_device(device)
    c = as_tensor(components, dev, torch.float64)
    k = as_tensor(coefficients, dev, torch.float64)
    u = k @ c.T
    if pv is not None:
        u = u + as_tensor(pv, dev, torch.float64)[None, :]
    return (float(beta) * u).cpu().numpy()


def reduced_potential_matrix_reference(components: Any, coefficients: Any, beta: float, pv: Any = None) -> np.ndarray:
    """Reference path of :func:`reduced_potential_matrix`: explicit loops in numpy, shape (K, F)."""
    _validate(components, coefficients, pv)
    c = np.asarray(components, dtype=np.float64)
    k = np.asarray(coefficients, dtype=np.float64)
    out = np.empty((k.shape[0], c.shape[0]))
    for i in range(k.shape[0]):
        for n in range(c.shape[0]):
            out[i, n] = beta * (float(np.dot(c[n], k[i])) + (0.0 if pv is None else float(pv[n])))
    return out
