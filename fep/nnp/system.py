"""The ML/MM Hamiltonian of the NNP correction: ΔU = U_ANI − U_MM,intra of the ligand, and λ-systems.

``U_λ(x) = U_MM(x) + λ·ΔU(x_lig)`` with ``ΔU = [U_ANI(x_lig) − E_self] − U_MM,intra(x_lig)``:

- ``U_ANI`` is ANI-2x on the ligand alone (whole molecule, no periodic images), float64;
- ``E_self`` is the sum of ANI-2x's self (free-atom) energies of the ligand's atoms: a constant that depends on
  the composition only (subtracting it moves the energy zero to the free atoms, keeps every number in a readable
  range and cancels exactly in every ΔΔG, where each ligand appears once with + and once with −);
- ``U_MM,intra`` is the ligand's intramolecular MM energy of the vacuum ligand system
  (:func:`ligand_prep.parameters.ligand_system`: no cutoff, no constraints), evaluated by
  :class:`gpu_kernels.mm_intra.MMIntraKernel`.

The same :class:`DeltaU` object drives the dynamics at λ > 0 (through an ``openmm.PythonForce``) and the
reweighting, so the sampled and the analysed Hamiltonians are identical by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ligand_prep.models import PreparedLigand
from mlfep_core import InputError

__all__ = ["LAMBDA_PARAMETER", "DeltaU", "add_nnp_force", "make_whole"]

log = logging.getLogger(__name__)

#: Name of the OpenMM global parameter that scales ΔU.
LAMBDA_PARAMETER = "lambda_nnp"


def _minimum_image(d: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Minimum-image of difference vectors ``d`` (M, 3) in OpenMM's reduced triclinic boxes (M, 3, 3)."""
    d = d - boxes[:, 2] * np.round(d[:, 2] / boxes[:, 2, 2])[:, None]
    d = d - boxes[:, 1] * np.round(d[:, 1] / boxes[:, 1, 1])[:, None]
    d = d - boxes[:, 0] * np.round(d[:, 0] / boxes[:, 0, 0])[:, None]
    return d


def make_whole(coords: np.ndarray, boxes: np.ndarray | None, bonds: np.ndarray) -> np.ndarray:
    """Undo periodic wrapping of one molecule: each atom placed at the minimum image of its bonded parent.

    Parameters
    ----------
    coords : ndarray, shape (M, n, 3)
        The molecule's positions in nm in M frames.
    boxes : ndarray, shape (M, 3, 3) or None
        Box vectors (rows) in nm; None for non-periodic frames (returned unchanged).
    bonds : ndarray, shape (B, 2)
        The molecule's bonds (local indices).

    Returns
    -------
    ndarray, shape (M, n, 3)
    """
    x = np.array(coords, dtype=np.float64, copy=True)
    if boxes is None:
        return x
    boxes = np.asarray(boxes, dtype=np.float64)
    n = x.shape[1]
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in np.asarray(bonds, dtype=int).reshape(-1, 2):
        neighbours[i].append(j)
        neighbours[j].append(i)
    seen = np.zeros(n, dtype=bool)
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        queue = [root]
        while queue:
            parent = queue.pop()
            for child in neighbours[parent]:
                if not seen[child]:
                    seen[child] = True
                    d = _minimum_image(x[:, child] - x[:, parent], boxes)
                    x[:, child] = x[:, parent] + d
                    queue.append(child)
    return x


class DeltaU:
    """ΔU = [U_ANI − E_self] − U_MM,intra of one ligand, batched over frames (kJ/mol, nm).

    Parameters
    ----------
    prepared : PreparedLigand
        The ligand (its mol block gives the elements and the atom order).
    device : optional
        torch device for both kernels (default CUDA when available).
    threads : int, optional
        torch threads during the calls (1 is fastest for one small molecule on a CPU).
    md_dtype : {'float32', 'float64'}
        Precision of the ANI forces used for MD (:meth:`energy_and_forces`); energies for the reweighting
        (:meth:`__call__`) are always float64.
    """

    def __init__(
        self, prepared: PreparedLigand, device: Any = None, threads: int | None = None, md_dtype: str = "float32"
    ) -> None:
        from rdkit import Chem

        from gpu_kernels.ani import ANIBatch
        from gpu_kernels.mm_intra import MMIntraKernel
        from ligand_prep.parameters import ligand_system

        mol = Chem.MolFromMolBlock(prepared.ligand.molblock, removeHs=False)
        self.name = prepared.name
        self.species = tuple(atom.GetAtomicNum() for atom in mol.GetAtoms())
        self.ani = ANIBatch(self.species, device=device, threads=threads)
        # MD forces in float32 from the free atoms (precise to ~1e-5 kJ/mol, ~40 % cheaper on a CPU); the
        # reweighting uses the float64 energies of ``self.ani``: the two differ by rounding noise only
        self.ani_md = ANIBatch(self.species, device=device, dtype=md_dtype, threads=threads, from_free_atoms=True)
        vacuum_system, _, _ = ligand_system(prepared)
        self.mm = MMIntraKernel.from_system(vacuum_system, range(vacuum_system.getNumParticles()), device=device)
        self.mm.threads = threads
        self.bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=int)
        self.self_energy = self.ani.self_energy

    @property
    def n_atoms(self) -> int:
        """Number of ligand atoms."""
        return len(self.species)

    def components(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U_ANI − E_self, U_MM,intra), each shape (M,) kJ/mol, of whole-molecule frames (M, n, 3) nm."""
        return self.ani.energies(coords) - self.self_energy, self.mm.energies(coords)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """ΔU of whole-molecule frames ``coords`` (M, n, 3) nm, shape (M,) kJ/mol."""
        ani, mm = self.components(coords)
        return ani - mm

    def energy_and_forces(self, coords: np.ndarray) -> tuple[float, np.ndarray]:
        """ΔU (kJ/mol) and its forces (n, 3) kJ/mol/nm for one whole-molecule frame (n, 3) nm (MD precision)."""
        e_ani, f_ani = self.ani_md.energies_and_forces(coords[None])
        e_mm, f_mm = self.mm.energies_and_forces(coords[None])
        return float(e_ani[0] - e_mm[0]), f_ani[0] - f_mm[0]


class _NNPCompute:
    """The PythonForce callback: λ·ΔU and its forces for the ligand particles."""

    def __init__(self, delta_u: DeltaU, periodic: bool) -> None:
        self.delta_u = delta_u
        self.periodic = periodic

    def __call__(self, state):
        import openmm.unit as u

        lam = state.getParameters()[LAMBDA_PARAMETER]
        n = self.delta_u.n_atoms
        if lam == 0.0:
            return 0.0, np.zeros((n, 3))
        x = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)[None]
        if self.periodic:
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.nanometer))[None]
            x = make_whole(x, box, self.delta_u.bonds)
        energy, forces = self.delta_u.energy_and_forces(x[0])
        return lam * energy, lam * forces


def add_nnp_force(system, ligand_atoms: Sequence[int], delta_u: DeltaU, lam: float = 0.0) -> None:
    """Add ``λ·ΔU(x_lig)`` to ``system`` as an ``openmm.PythonForce`` with global parameter ``lambda_nnp``.

    ``system`` is modified in place (clone it first). At λ = 0 it is the MM system, at λ = 1 the ML/MM system
    ``U_MM − U_MM,intra + U_ANI − E_self``. Constraints and masses are left as they are.
    """
    import openmm

    ligand_atoms = [int(a) for a in ligand_atoms]
    if len(ligand_atoms) != delta_u.n_atoms:
        raise InputError(f"ligand {delta_u.name}: {len(ligand_atoms)} ligand atom indices for {delta_u.n_atoms} atoms")
    periodic = system.usesPeriodicBoundaryConditions()
    force = openmm.PythonForce(_NNPCompute(delta_u, periodic), {LAMBDA_PARAMETER: float(lam)})
    force.setParticles(ligand_atoms)
    force.setUsesPeriodicBoundaryConditions(periodic)
    system.addForce(force)
