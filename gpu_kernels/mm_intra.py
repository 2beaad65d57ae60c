"""Intramolecular MM energy of one molecule over many frames, batched in torch.

Terms: HarmonicBondForce, HarmonicAngleForce, PeriodicTorsionForce, and the NonbondedForce pairs inside the
molecule (Coulomb + Lennard-Jones, Lorentz–Berthelot, exceptions as given, no cutoff), i.e. what OpenMM's
Reference platform computes for the molecule alone in vacuum with ``NoCutoff``. The reference path
(:func:`openmm_reference_energies`) evaluates an OpenMM system frame by frame.

Units: nm in, kJ/mol (and kJ/mol/nm) out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpu_kernels._torch import as_tensor, resolve_device, resolve_dtype, torch_threads

__all__ = ["ONE_4PI_EPS0", "MMIntraKernel", "MMIntraTerms", "openmm_reference_energies"]

#: Coulomb constant in kJ mol⁻¹ nm e⁻² (OpenMM's value).
ONE_4PI_EPS0 = 138.93545764438198

# forces that add no potential energy (or none inside one molecule) and are ignored
_NO_ENERGY = {"CMMotionRemover", "MonteCarloBarostat", "MonteCarloAnisotropicBarostat", "MonteCarloFlexibleBarostat"}


@dataclass(frozen=True)
class MMIntraTerms:
    """The molecule's MM terms, indices local to the molecule (0..n-1), OpenMM units (nm, rad, kJ/mol).

    Attributes
    ----------
    n_atoms : int
    bonds : ndarray, shape (B, 2) int; bond_params : ndarray, shape (B, 2) (r0, k)
    angles : ndarray, shape (A, 3) int; angle_params : ndarray, shape (A, 2) (theta0, k)
    torsions : ndarray, shape (T, 4) int; torsion_params : ndarray, shape (T, 3) (periodicity, phase, k)
    pairs : ndarray, shape (P, 2) int; pair_params : ndarray, shape (P, 3) (charge product, sigma, epsilon)
    """

    n_atoms: int
    bonds: np.ndarray
    bond_params: np.ndarray
    angles: np.ndarray
    angle_params: np.ndarray
    torsions: np.ndarray
    torsion_params: np.ndarray
    pairs: np.ndarray
    pair_params: np.ndarray


def _extract(system, atoms: Sequence[int]) -> MMIntraTerms:
    """The MM terms of ``system`` among ``atoms`` (a molecule of a plain, non-alchemical system)."""
    import openmm

    from mlfep_core import InputError, ParametrizationError

    atoms = [int(a) for a in atoms]
    if len(set(atoms)) != len(atoms):
        raise InputError("MMIntraKernel: atom indices are not unique")
    n_sys = system.getNumParticles()
    if any(a < 0 or a >= n_sys for a in atoms):
        raise InputError(f"MMIntraKernel: atom indices must be in 0..{n_sys - 1}")
    local = {a: i for i, a in enumerate(atoms)}
    bonds: list[tuple] = []
    bond_p: list[tuple] = []
    angles: list[tuple] = []
    angle_p: list[tuple] = []
    tors: list[tuple] = []
    tors_p: list[tuple] = []
    nonbonded = None
    for force in system.getForces():
        name = type(force).__name__
        if isinstance(force, openmm.HarmonicBondForce):
            _bonds(force, local, bonds, bond_p)
        elif isinstance(force, openmm.HarmonicAngleForce):
            _angles(force, local, angles, angle_p)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            _torsions(force, local, tors, tors_p)
        elif isinstance(force, openmm.NonbondedForce):
            if nonbonded is not None:
                raise ParametrizationError("MMIntraKernel: more than one NonbondedForce in the system")
            nonbonded = force
        elif name not in _NO_ENERGY:
            raise ParametrizationError(
                f"MMIntraKernel: force {name} is not supported (only harmonic bonds/angles, periodic torsions and "
                "NonbondedForce); parametrize the ligand with OpenFF or GAFF"
            )
    pairs, pair_p = _nonbonded_pairs(nonbonded, atoms, local) if nonbonded is not None else ([], [])

    def arr(rows, width, dtype=float):
        return np.asarray(rows, dtype=dtype).reshape(-1, width)

    return MMIntraTerms(
        n_atoms=len(atoms),
        bonds=arr(bonds, 2, int),
        bond_params=arr(bond_p, 2),
        angles=arr(angles, 3, int),
        angle_params=arr(angle_p, 2),
        torsions=arr(tors, 4, int),
        torsion_params=arr(tors_p, 3),
        pairs=arr(pairs, 2, int),
        pair_params=arr(pair_p, 3),
    )


def _bonds(force, local: dict[int, int], rows: list, params: list) -> None:
    import openmm.unit as u

    for k in range(force.getNumBonds()):
        i, j, r0, kb = force.getBondParameters(k)
        if i in local and j in local:
            rows.append((local[i], local[j]))
            params.append((r0.value_in_unit(u.nanometer), kb.value_in_unit(kb.unit)))


def _angles(force, local: dict[int, int], rows: list, params: list) -> None:
    import openmm.unit as u

    for k in range(force.getNumAngles()):
        i, j, m, th0, ka = force.getAngleParameters(k)
        if i in local and j in local and m in local:
            rows.append((local[i], local[j], local[m]))
            params.append((th0.value_in_unit(u.radian), ka.value_in_unit(ka.unit)))


def _torsions(force, local: dict[int, int], rows: list, params: list) -> None:
    import openmm.unit as u

    for k in range(force.getNumTorsions()):
        i, j, m, n, per, phase, kt = force.getTorsionParameters(k)
        if all(a in local for a in (i, j, m, n)):
            rows.append((local[i], local[j], local[m], local[n]))
            params.append((per, phase.value_in_unit(u.radian), kt.value_in_unit(kt.unit)))


def _nonbonded_pairs(nonbonded, atoms: list[int], local: dict[int, int]) -> tuple[list, list]:
    """Every intramolecular pair with a nonzero charge product or ε: exceptions as given, others mixed."""
    import openmm.unit as unit

    from mlfep_core import ParametrizationError

    if nonbonded.getNumParticleParameterOffsets() or nonbonded.getNumExceptionParameterOffsets():
        touched = {
            nonbonded.getParticleParameterOffset(k)[1] for k in range(nonbonded.getNumParticleParameterOffsets())
        }
        if touched & set(local) or nonbonded.getNumExceptionParameterOffsets():
            raise ParametrizationError(
                "MMIntraKernel: NonbondedForce parameter offsets touch these atoms (a hybrid system?); "
                "give the plain end-state system"
            )
    params = []
    for a in atoms:
        q, sig, eps = nonbonded.getParticleParameters(a)
        params.append(
            (q.value_in_unit(unit.elementary_charge), sig.value_in_unit(unit.nanometer), eps.value_in_unit(eps.unit))
        )
    exceptions = {}
    for k in range(nonbonded.getNumExceptions()):
        i, j, qq, sig, eps = nonbonded.getExceptionParameters(k)
        if i in local and j in local:
            key = (min(local[i], local[j]), max(local[i], local[j]))
            exceptions[key] = (
                qq.value_in_unit(unit.elementary_charge**2),
                sig.value_in_unit(unit.nanometer),
                eps.value_in_unit(eps.unit),
            )
    pairs, pair_p = [], []
    n = len(atoms)
    for i in range(n):
        qi, si, ei = params[i]
        for j in range(i + 1, n):
            if (i, j) in exceptions:
                qq, sig, eps = exceptions[(i, j)]
            else:
                qj, sj, ej = params[j]
                qq, sig, eps = qi * qj, 0.5 * (si + sj), math.sqrt(ei * ej)
            if qq != 0.0 or eps != 0.0:
                pairs.append((i, j))
                pair_p.append((qq, sig, eps))
    return pairs, pair_p


class MMIntraKernel:
    """Batched intramolecular MM energy (and forces) of one molecule.

    Build it with :meth:`from_system`. ``energies(coords)`` takes frames of shape (F, n, 3) in nm (the molecule
    whole, no periodic wrapping) and returns (F,) kJ/mol.

    Parameters
    ----------
    terms : MMIntraTerms
        The molecule's terms.
    device, dtype :
        torch device (default CUDA when available) and dtype (default float64).
    chunk_size : int
        Frames per call (bounds memory: pairs × chunk × 3 floats).
    threads : int, optional
        torch intra-op threads during the calls (None: unchanged).
    """

    def __init__(
        self, terms: MMIntraTerms, device: Any = None, dtype: Any = None, chunk_size: int = 1024, threads=None
    ) -> None:
        import torch

        self.terms = terms
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.chunk_size = int(chunk_size)
        self.threads = threads

        def idx(a):
            return torch.as_tensor(a, dtype=torch.long, device=self.device)

        def val(a):
            return torch.as_tensor(a, dtype=self.dtype, device=self.device)

        self._bonds, self._bond_p = idx(terms.bonds), val(terms.bond_params)
        self._angles, self._angle_p = idx(terms.angles), val(terms.angle_params)
        self._tors, self._tors_p = idx(terms.torsions), val(terms.torsion_params)
        self._pairs, self._pair_p = idx(terms.pairs), val(terms.pair_params)

    @classmethod
    def from_system(
        cls, system, atoms: Sequence[int], device: Any = None, dtype: Any = None, **kwargs: Any
    ) -> MMIntraKernel:
        """The kernel for the terms of ``system`` among ``atoms`` (particle indices, in the molecule's order).

        Raises
        ------
        ParametrizationError
            The system has an energy term of an unsupported type, or parameter offsets on these atoms.
        """
        return cls(_extract(system, atoms), device=device, dtype=dtype, **kwargs)

    @property
    def n_atoms(self) -> int:
        """Number of atoms of the molecule."""
        return self.terms.n_atoms

    def _energy(self, x):
        """x: (F, n, 3) tensor in nm -> (F,) kJ/mol."""
        import torch

        energy = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if len(self._bonds):
            d = x[:, self._bonds[:, 1]] - x[:, self._bonds[:, 0]]
            r = torch.linalg.vector_norm(d, dim=-1)
            r0, k = self._bond_p[:, 0], self._bond_p[:, 1]
            energy = energy + (0.5 * k * (r - r0) ** 2).sum(-1)
        if len(self._angles):
            a = x[:, self._angles[:, 0]] - x[:, self._angles[:, 1]]
            b = x[:, self._angles[:, 2]] - x[:, self._angles[:, 1]]
            # atan2 of |a×b| and a·b is accurate near 0 and π (acos is not)
            theta = torch.atan2(torch.linalg.vector_norm(torch.cross(a, b, dim=-1), dim=-1), (a * b).sum(-1))
            th0, k = self._angle_p[:, 0], self._angle_p[:, 1]
            energy = energy + (0.5 * k * (theta - th0) ** 2).sum(-1)
        if len(self._tors):
            p0, p1, p2, p3 = (x[:, self._tors[:, i]] for i in range(4))
            b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
            n1 = torch.cross(b1, b2, dim=-1)
            n2 = torch.cross(b2, b3, dim=-1)
            m1 = torch.cross(n1, b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True), dim=-1)
            phi = torch.atan2((m1 * n2).sum(-1), (n1 * n2).sum(-1))
            per, phase, k = self._tors_p[:, 0], self._tors_p[:, 1], self._tors_p[:, 2]
            # sign convention of phi does not matter for periodicity n but does for the phase: OpenMM uses -phi here
            energy = energy + (k * (1.0 + torch.cos(per * (-phi) - phase))).sum(-1)
        if len(self._pairs):
            d = x[:, self._pairs[:, 1]] - x[:, self._pairs[:, 0]]
            r = torch.linalg.vector_norm(d, dim=-1)
            qq, sig, eps = self._pair_p[:, 0], self._pair_p[:, 1], self._pair_p[:, 2]
            sr6 = (sig / r) ** 6
            energy = energy + (ONE_4PI_EPS0 * qq / r + 4.0 * eps * (sr6 * sr6 - sr6)).sum(-1)
        return energy

    def _prepare(self, coords):
        from mlfep_core import InputError

        x = as_tensor(coords, self.device, self.dtype)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.n_atoms, 3):
            raise InputError(f"coordinates must have shape (F, {self.n_atoms}, 3) in nm, got {tuple(x.shape)}")
        return x

    def energies(self, coords: Any) -> np.ndarray:
        """Intramolecular MM energies, shape (F,) kJ/mol, of frames ``coords`` (F, n, 3) nm."""
        import torch

        x = self._prepare(coords)
        with torch.no_grad(), torch_threads(self.threads):
            out = [self._energy(x[s : s + self.chunk_size]) for s in range(0, x.shape[0], self.chunk_size)]
        return torch.cat(out).to(torch.float64).cpu().numpy() if out else np.zeros(0)

    def energies_and_forces(self, coords: Any) -> tuple[np.ndarray, np.ndarray]:
        """Energies (F,) kJ/mol and forces (F, n, 3) kJ/mol/nm."""
        import torch

        x = self._prepare(coords)
        es, fs = [], []
        with torch_threads(self.threads):
            for s in range(0, x.shape[0], self.chunk_size):
                chunk = x[s : s + self.chunk_size].detach().requires_grad_(True)
                e = self._energy(chunk)
                (g,) = torch.autograd.grad(e.sum(), chunk)
                es.append(e.detach())
                fs.append(-g.detach())
        return (
            torch.cat(es).to(torch.float64).cpu().numpy(),
            torch.cat(fs).to(torch.float64).cpu().numpy(),
        )


def openmm_reference_energies(system, coords: Any, platform: str = "Reference") -> np.ndarray:
    """Reference path: potential energy of ``system`` for each frame, one at a time, with OpenMM.

    Parameters
    ----------
    system : openmm.System
        A system whose particles are exactly the frames' atoms (e.g. the vacuum ligand system).
    coords : array, shape (F, n, 3)
        Positions in nm.

    Returns
    -------
    ndarray, shape (F,)
        kJ/mol.
    """
    import openmm
    import openmm.unit as u

    x = np.asarray(coords, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    out = np.empty(len(x))
    for i, frame in enumerate(x):
        context.setPositions(frame * u.nanometer)
        out[i] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
    return out
