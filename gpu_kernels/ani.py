"""ANI-2x energies of one molecule over many frames, batched (the hot loop of the NNP endpoint correction).

The model is built from torchani's own architecture and loaded from the local weight file found by
:func:`gpu_kernels.weights.find_ani2x_weights` (never downloaded), once per process, device and dtype.

Units: coordinates in nm in, energies in kJ/mol and forces in kJ/mol/nm out (torchani itself works in Å and
Hartree; 1 Eh = 2625.4996394799 kJ/mol).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpu_kernels._torch import as_tensor, resolve_device, resolve_dtype, torch_threads
from mlfep_core.constants import HARTREE_TO_KJ_MOL

__all__ = ["ANI2X_ELEMENTS", "HARTREE_TO_KJ_MOL", "ANIBatch", "load_ani2x"]

log = logging.getLogger(__name__)

#: kJ/mol per Hartree.
#: Atomic numbers ANI-2x covers: H C N O F S Cl.
ANI2X_ELEMENTS = frozenset({1, 6, 7, 8, 9, 16, 17})


@functools.lru_cache(maxsize=8)
def _load(weights: str, device: str, dtype: str, self_energies: bool = True):
    import torch
    from torchani.arch import Assembler
    from torchani.utils import SYMBOLS_2X

    # the same assembly as torchani.models.ANI2x, but with the state dict read from a local file
    asm = Assembler(periodic_table_index=True)
    asm.set_symbols(SYMBOLS_2X)
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(radial="ani2x", angular="ani2x", strategy="pyaev")
    asm.set_atomic_networks(ctor="ani2x")
    asm.set_neighborlist("all_pairs")
    asm.set_gsaes_as_self_energies("wb97x-631gd")
    model = asm.assemble(8)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.requires_grad_(False)
    model.eval()
    model.to(device=torch.device(device), dtype=getattr(torch, dtype))
    if not self_energies:
        # energies measured from the free atoms: small numbers, so float32 keeps ~1e-5 kJ/mol
        model.energy_shifter.self_energies.zero_()
    log.info("loaded ANI-2x from %s on %s (%s)", weights, device, dtype)
    return model


def load_ani2x(device: Any = None, dtype: Any = None, weights: str | None = None, self_energies: bool = True):
    """The ANI-2x ensemble (8 networks) as a torchani module, cached per process, device and dtype.

    Parameters
    ----------
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    dtype : {'float64', 'float32'} or torch dtype, optional
        Default float64.
    weights : str, optional
        The state-dict file; default :func:`gpu_kernels.weights.find_ani2x_weights` (raises
        :class:`~gpu_kernels.weights.ModelWeightsError` with install instructions when missing).
    self_energies : bool
        False: a copy whose self (free-atom) energies are zero, i.e. energies measured from the free atoms.
    """
    if weights is None:
        from gpu_kernels.weights import find_ani2x_weights

        weights = str(find_ani2x_weights())
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    return _load(str(weights), str(dev), str(dt).replace("torch.", ""), bool(self_energies))


class ANIBatch:
    """ANI-2x energies (and forces) of one molecule for many frames at once.

    Parameters
    ----------
    species : sequence of int
        Atomic numbers, one per atom (H C N O F S Cl only).
    device : str or torch.device, optional
        Default: CUDA when torch sees one, else CPU.
    dtype : {'float64', 'float32'}, optional
        Default float64 (ANI totals are ~1e6 kJ/mol; float32 rounds them to ~0.05 kJ/mol).
    chunk_size : int
        Frames per model call (bounds memory).
    threads : int, optional
        torch intra-op threads during the calls (restored afterwards); 1 is fastest for one small molecule on a
        busy CPU. Default: leave torch's setting.
    from_free_atoms : bool
        True: energies measured from the free atoms (the self energies :attr:`self_energy` left out), computed
        without ever forming the large absolute total, so float32 stays precise (use it for MD forces).

    Examples
    --------
    >>> ani = ANIBatch([6, 1, 1, 1, 1])                     # doctest: +SKIP
    >>> ani.energies(frames)                                # frames: (F, 5, 3) nm -> (F,) kJ/mol  # doctest: +SKIP
    """

    def __init__(
        self,
        species: Sequence[int],
        device: Any = None,
        dtype: Any = None,
        chunk_size: int = 128,
        threads: int | None = None,
        from_free_atoms: bool = False,
    ) -> None:
        from mlfep_core import InputError

        species = [int(z) for z in species]
        if not species:
            raise InputError("ANIBatch needs at least one atom")
        bad = sorted({z for z in species if z not in ANI2X_ELEMENTS})
        if bad:
            raise InputError(f"ANI-2x covers only H C N O F S Cl; atomic numbers {bad} are not supported")
        if chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
        self.species = tuple(species)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.chunk_size = int(chunk_size)
        self.threads = threads
        self.from_free_atoms = bool(from_free_atoms)
        self.model = load_ani2x(self.device, self.dtype, self_energies=not self.from_free_atoms)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.species)

    @functools.cached_property
    def self_energy(self) -> float:
        """Sum of ANI-2x's self (free-atom) energies of these atoms, kJ/mol: a composition-only constant."""
        import torch

        model = load_ani2x("cpu", "float64")
        zs = torch.tensor([self.species])
        idx = model.species_converter(zs)
        sae = model.energy_shifter.self_energies.to(torch.float64)[idx[0]]
        return float(sae.sum().cpu()) * HARTREE_TO_KJ_MOL

    def _check(self, coords):
        from mlfep_core import InputError

        if coords.ndim == 2:
            coords = coords[None]
        if coords.ndim != 3 or tuple(coords.shape[1:]) != (self.n_atoms, 3):
            raise InputError(f"coordinates must have shape (F, {self.n_atoms}, 3) in nm, got {tuple(coords.shape)}")
        return coords

    def _energy_hartree(self, xyz_angstrom):
        import torch

        n = xyz_angstrom.shape[0]
        zs = torch.tensor(self.species, device=self.device).expand(n, -1)
        return self.model((zs, xyz_angstrom)).energies

    def energies(self, coords: Any) -> np.ndarray:
        """Energies of every frame.

        Parameters
        ----------
        coords : array, shape (F, n, 3)
            Positions in nm (numpy or torch). The molecule must be whole (no periodic wrapping).

        Returns
        -------
        ndarray, shape (F,)
            ANI-2x energies in kJ/mol, float64: absolute (self energies included), or from the free atoms when
            ``from_free_atoms``.
        """
        import torch

        x = self._check(as_tensor(coords, self.device, self.dtype)).contiguous()
        out = []
        with torch.no_grad(), torch_threads(self.threads):
            for start in range(0, x.shape[0], self.chunk_size):
                chunk = x[start : start + self.chunk_size] * 10.0
                out.append(self._energy_hartree(chunk).to(torch.float64))
        if not out:
            return np.zeros(0)
        return torch.cat(out).cpu().numpy() * HARTREE_TO_KJ_MOL

    def energies_and_forces(self, coords: Any) -> tuple[np.ndarray, np.ndarray]:
        """Energies and forces of every frame.

        Returns
        -------
        energies : ndarray, shape (F,)
            kJ/mol.
        forces : ndarray, shape (F, n, 3)
            kJ/mol/nm (minus the gradient).
        """
        import torch

        x = self._check(as_tensor(coords, self.device, self.dtype)).contiguous()
        energies, forces = [], []
        with torch_threads(self.threads):
            for start in range(0, x.shape[0], self.chunk_size):
                chunk = (x[start : start + self.chunk_size] * 10.0).detach().requires_grad_(True)
                energy = self._energy_hartree(chunk)
                (grad,) = torch.autograd.grad(energy.sum(), chunk)
                energies.append(energy.detach().to(torch.float64))
                # dE/dx[nm] = 10 dE/dx[Å]
                forces.append(-10.0 * grad.detach().to(torch.float64))
        e = torch.cat(energies).cpu().numpy() * HARTREE_TO_KJ_MOL
        f = torch.cat(forces).cpu().numpy() * HARTREE_TO_KJ_MOL
        return e, f

    def reference_energies(self, coords: Any) -> np.ndarray:
        """Reference path: one frame at a time through torchani on the CPU in float64, shape (F,) kJ/mol
        (from the free atoms when this batch is)."""
        import torch

        model = load_ani2x("cpu", "float64")
        x = np.asarray(coords.detach().cpu() if hasattr(coords, "detach") else coords, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        zs = torch.tensor([self.species])
        out = np.empty(len(x))
        with torch.no_grad(), torch_threads(self.threads):
            for i, frame in enumerate(x):
                xyz = torch.from_numpy(frame * 10.0)[None]
                out[i] = float(model((zs, xyz)).energies[0]) * HARTREE_TO_KJ_MOL
        return out - self.self_energy if self.from_free_atoms else out
