"""ANIBatch: batched energies equal torchani one frame at a time; forces are minus the gradient."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_kernels.ani import ANIBatch
from mlfep_core import InputError
from mlfep_core.constants import HARTREE_TO_KJ_MOL

# methanol and chloro-fluoro-thiophene-like toy geometries (nm); the exact shapes do not matter for equivalence
METHANOL = (
    [6, 1, 1, 1, 8, 1],
    [
        [0, 0, 0],
        [0.109, 0, 0],
        [-0.036, 0.103, 0],
        [-0.036, -0.051, 0.089],
        [-0.047, -0.067, -0.117],
        [-0.01, -0.157, -0.11],
    ],
)
CHLOROMETHANETHIOL = (
    [6, 17, 16, 1, 1, 1, 9],
    [
        [0, 0, 0],
        [0.177, 0, 0],
        [-0.06, 0.165, 0],
        [-0.04, -0.05, 0.09],
        [0.03, 0.2, 0.1],
        [-0.05, -0.06, -0.09],
        [-0.2, 0.19, 0.02],
    ],
)


def _frames(geometry, n, seed=0):
    rng = np.random.default_rng(seed)
    x0 = np.asarray(geometry, dtype=np.float64)
    return x0 + rng.normal(0.0, 0.004, size=(n, *x0.shape))


@pytest.mark.parametrize("molecule", [METHANOL, CHLOROMETHANETHIOL])
def test_batched_energies_equal_reference(molecule):
    species, geometry = molecule
    frames = _frames(geometry, 7)
    ani = ANIBatch(species, device="cpu", chunk_size=3, threads=1)  # chunking across frames is exercised
    batched = ani.energies(frames)
    reference = ani.reference_energies(frames)
    assert batched.shape == (7,)
    np.testing.assert_allclose(batched, reference, rtol=1e-12, atol=1e-6)
    # frames differ, so the energies must differ (not one frame repeated)
    assert np.ptp(batched) > 1e-3


def test_torchani_model_agrees_with_the_direct_load():
    """Our offline assembly gives the same numbers as torchani.models.ANI2x (weights from TORCHANI_DATA_DIR)."""
    import torch
    from torchani.models import ANI2x

    species, geometry = METHANOL
    frames = _frames(geometry, 2)
    model = ANI2x(periodic_table_index=True).double()
    with torch.no_grad():
        direct = model((torch.tensor([species] * 2), torch.tensor(frames * 10.0))).energies.numpy()
    np.testing.assert_allclose(ANIBatch(species, device="cpu").energies(frames), direct * HARTREE_TO_KJ_MOL, rtol=1e-12)


def test_forces_are_minus_gradient_and_self_energy_is_composition_only():
    species, geometry = METHANOL
    frames = _frames(geometry, 2, seed=1)
    ani = ANIBatch(species, device="cpu", threads=1)
    energies, forces = ani.energies_and_forces(frames)
    np.testing.assert_allclose(energies, ani.energies(frames), rtol=1e-12)
    h = 1e-5
    for atom, axis in [(0, 0), (4, 2)]:
        plus, minus = frames[:1].copy(), frames[:1].copy()
        plus[0, atom, axis] += h
        minus[0, atom, axis] -= h
        numeric = -(ani.energies(plus)[0] - ani.energies(minus)[0]) / (2 * h)
        assert forces[0, atom, axis] == pytest.approx(numeric, rel=1e-5, abs=1e-3)
    # self energy: H -0.5979, C -38.0893, O -75.1911 Eh (ANI-2x wB97X/6-31G(d) GSAEs) -> about -115.7 Eh
    assert ani.self_energy / HARTREE_TO_KJ_MOL == pytest.approx(4 * -0.5979 - 38.0893 - 75.1911, abs=1e-3)


@pytest.mark.parametrize("molecule", [METHANOL, CHLOROMETHANETHIOL])
def test_float32_from_free_atoms_is_precise(molecule):
    """The MD path (float32, self energies left out) agrees with float64 to ~1e-3 kJ/mol, forces to ~1e-3."""
    species, geometry = molecule
    frames = _frames(geometry, 4, seed=4)
    exact = ANIBatch(species, device="cpu")
    md = ANIBatch(species, device="cpu", dtype="float32", from_free_atoms=True)
    e32, f32 = md.energies_and_forces(frames)
    e64, f64 = exact.energies_and_forces(frames)
    np.testing.assert_allclose(e32, e64 - exact.self_energy, rtol=0, atol=2e-3)
    np.testing.assert_allclose(f32, f64, rtol=0, atol=2e-3 * np.abs(f64).max())
    np.testing.assert_allclose(md.reference_energies(frames[:1]), e64[:1] - exact.self_energy, atol=1e-8)


def test_rejects_unsupported_elements_and_bad_shapes():
    with pytest.raises(InputError, match="35"):
        ANIBatch([6, 35, 1, 1, 1], device="cpu")
    ani = ANIBatch(METHANOL[0], device="cpu")
    with pytest.raises(InputError, match="shape"):
        ani.energies(np.zeros((2, 5, 3)))


@pytest.mark.gpu
def test_cuda_batched_equals_cpu_reference():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    species, geometry = CHLOROMETHANETHIOL
    frames = _frames(geometry, 1000)
    ani = ANIBatch(species, device="cuda", dtype="float64", chunk_size=256)
    np.testing.assert_allclose(ani.energies(frames), ani.reference_energies(frames), rtol=1e-10, atol=1e-5)
    ani32 = ANIBatch(species, device="cuda", dtype="float32")
    np.testing.assert_allclose(ani32.energies(frames), ani.reference_energies(frames), rtol=0, atol=0.5)
