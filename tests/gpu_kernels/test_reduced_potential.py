"""reduced_potential_matrix: torch result equals the numpy loop reference; shapes are checked."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_kernels.reduced_potential import reduced_potential_matrix, reduced_potential_matrix_reference
from mlfep_core import InputError


def test_matrix_equals_reference_with_and_without_pv():
    rng = np.random.default_rng(0)
    components = rng.normal(size=(9, 2)) * 100.0  # (U_MM, ΔU) of 9 frames
    coefficients = np.stack([np.ones(5), np.linspace(0.0, 1.0, 5)], axis=1)  # U_MM + λ ΔU for 5 states
    pv = rng.uniform(0.0, 1.0, size=9)
    beta = 1.0 / 2.494
    for p in (None, pv):
        u_kn = reduced_potential_matrix(components, coefficients, beta, pv=p, device="cpu")
        assert u_kn.shape == (5, 9)
        np.testing.assert_allclose(u_kn, reduced_potential_matrix_reference(components, coefficients, beta, pv=p))
    # state 0 (λ = 0) is β (U_MM + pV)
    np.testing.assert_allclose(
        reduced_potential_matrix(components, coefficients, beta, pv=pv, device="cpu")[0], beta * (components[:, 0] + pv)
    )


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="coefficients"):
        reduced_potential_matrix(np.zeros((4, 2)), np.zeros((3, 3)), 1.0)
    with pytest.raises(InputError, match="pv"):
        reduced_potential_matrix(np.zeros((4, 2)), np.zeros((3, 2)), 1.0, pv=np.zeros(3))


@pytest.mark.gpu
def test_cuda_matrix_equals_reference():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(1)
    components, coefficients = rng.normal(size=(5000, 3)), rng.normal(size=(12, 3))
    np.testing.assert_allclose(
        reduced_potential_matrix(components, coefficients, 0.4, device="cuda"),
        reduced_potential_matrix(components, coefficients, 0.4, device="cpu"),
        rtol=1e-12,
    )
