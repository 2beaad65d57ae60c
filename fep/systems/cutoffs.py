"""The energy difference between two Lennard-Jones cutoff schemes of one system, frame by frame.

A leg is sampled with one cutoff scheme (the fast tier: LJ switched over 0.6-0.7 nm); Sage specifies another (0.8 to
0.9 nm). The free energy of changing the scheme at an end state follows from that end state's samples by
exponential averaging of ΔU = U_new - U_old (the unsampled-state correction YANK applies for its expanded cutoff),
so a tier's cutoff can be checked against Sage's without sampling the series again. :class:`LJSchemeChange`
computes ΔU exactly as OpenMM defines the two schemes:

- every particle pair that is not an exception (exceptions are computed without a cutoff, the same in both
  schemes) and within the larger cutoff: ``4 ε (σ¹²/r¹² - σ⁶/r⁶) (S_new(r) - S_old(r))`` with Lorentz-Berthelot
  combination and OpenMM's switch ``S(t) = 1 - 10 t³ + 15 t⁴ - 6 t⁵`` over ``[r_switch, r_cut]`` (1 below, 0 beyond);
- the isotropic dispersion corrections' difference, ``(C_new - C_old) / V``, whose coefficients come from OpenMM
  itself (the energy with the correction minus without, times the volume).

Every periodic image of a pair within the cutoff counts (a lattice sum), so the new cutoff may exceed what OpenMM
accepts for the box (half its height; a fast-tier rhombic dodecahedron 1.55 nm wide is 1.10 nm high): where a
cutoff is below the cell's inscribed radius the lattice sum is OpenMM's minimum-image energy exactly, and beyond
it the Hamiltonian is the periodic system's with that cutoff, which differs from a larger box's only by the
finite-size effect on the LJ tail. Electrostatics are left out: PME's total energy does not depend on its
real-space cutoff beyond the Ewald error tolerance.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlfep_core import InputError

__all__ = ["LJScheme", "LJSchemeChange", "lj_scheme"]


@dataclass(frozen=True)
class LJScheme:
    """A Lennard-Jones cutoff scheme: the cutoff and the switching distance (None: cut hard), in nm."""

    cutoff_nm: float
    switch_nm: float | None = None

    def __post_init__(self) -> None:
        if self.switch_nm is not None and not 0.0 < self.switch_nm < self.cutoff_nm:
            raise ValueError(
                f"switching distance {self.switch_nm} nm must lie between 0 and the cutoff {self.cutoff_nm}"
            )

    @property
    def inner_nm(self) -> float:
        """Below this distance the scheme leaves LJ untouched."""
        return self.cutoff_nm if self.switch_nm is None else self.switch_nm

    def label(self) -> str:
        if self.switch_nm is None:
            return f"cut at {self.cutoff_nm:g} nm"
        return f"switched {self.switch_nm:g}-{self.cutoff_nm:g} nm"

    def switch(self, r: np.ndarray) -> np.ndarray:
        """OpenMM's switching function of the scheme at distances ``r`` (nm)."""
        s = (r < self.cutoff_nm).astype(float)
        if self.switch_nm is not None:
            t = np.clip((r - self.switch_nm) / (self.cutoff_nm - self.switch_nm), 0.0, 1.0)
            s = s * (1.0 + t**3 * (-10.0 + t * (15.0 - 6.0 * t)))
        return s


def _nonbonded(system: Any):
    import openmm

    forces = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(forces) != 1:
        raise InputError(f"the system has {len(forces)} NonbondedForces; a cutoff scheme needs exactly one")
    customs = [type(f).__name__ for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce)]
    if customs:
        raise InputError(
            "the system also has a CustomNonbondedForce (an alchemical hybrid?); give the plain end-state system"
        )
    force = forces[0]
    if force.getNonbondedMethod() in (openmm.NonbondedForce.NoCutoff, openmm.NonbondedForce.CutoffNonPeriodic):
        raise InputError("the system is not periodic: it has no cutoff scheme to change")
    return force


def lj_scheme(system: Any) -> LJScheme:
    """The Lennard-Jones cutoff scheme of a periodic system's NonbondedForce."""
    force = _nonbonded(system)
    cutoff = force.getCutoffDistance().value_in_unit_system(_md_units())
    switch = force.getSwitchingDistance().value_in_unit_system(_md_units()) if force.getUseSwitchingFunction() else None
    return LJScheme(float(cutoff), None if switch is None else float(switch))


def _md_units():
    import openmm.unit

    return openmm.unit.md_unit_system


def _lrc_coefficient(system: Any, scheme: LJScheme) -> float:
    """OpenMM's isotropic dispersion correction for ``scheme`` times the box volume (kJ/mol nm³)."""
    import copy

    import openmm
    import openmm.unit as u

    force = copy.deepcopy(_nonbonded(system))
    if not force.getUseDispersionCorrection():
        return 0.0
    n = system.getNumParticles()
    for i in range(n):
        _, sigma, eps = force.getParticleParameters(i)
        force.setParticleParameters(i, 0.0, sigma, eps)
    for k in range(force.getNumExceptions()):
        i, j, _, sigma, eps = force.getExceptionParameters(k)
        force.setExceptionParameters(k, i, j, 0.0, sigma, eps)
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(scheme.cutoff_nm)
    force.setUseSwitchingFunction(scheme.switch_nm is not None)
    if scheme.switch_nm is not None:
        force.setSwitchingDistance(scheme.switch_nm)
    side = 2.5 * scheme.cutoff_nm + 1.0
    # Particles on a lattice far apart: the direct-space sum is the same with and without the correction.
    grid = int(np.ceil(n ** (1 / 3)))
    positions = [
        ((i % grid) * side / grid, (i // grid % grid) * side / grid, (i // grid**2) * side / grid) for i in range(n)
    ]
    energies = []
    for use in (True, False):
        force.setUseDispersionCorrection(use)
        probe = openmm.System()
        for i in range(n):
            probe.addParticle(system.getParticleMass(i))
        probe.setDefaultPeriodicBoxVectors(
            openmm.Vec3(side, 0, 0) * u.nanometer,
            openmm.Vec3(0, side, 0) * u.nanometer,
            openmm.Vec3(0, 0, side) * u.nanometer,
        )
        probe.addForce(copy.deepcopy(force))
        context = openmm.Context(probe, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions * u.nanometer)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))
        del context
    return (energies[0] - energies[1]) * side**3


class LJSchemeChange:
    """ΔU = U_new - U_old per frame for a plain periodic system sampled with its own LJ scheme (``old``).

    Parameters
    ----------
    system : openmm.System
        A plain (not alchemical) periodic system with one NonbondedForce; its scheme is the old one.
    new : LJScheme
        The scheme to reweight to.
    """

    def __init__(self, system: Any, new: LJScheme) -> None:
        force = _nonbonded(system)
        self.old = lj_scheme(system)
        self.new = new
        n = system.getNumParticles()
        sigma = np.empty(n)
        eps = np.empty(n)
        for i in range(n):
            _, s, e = force.getParticleParameters(i)
            sigma[i] = s.value_in_unit_system(_md_units())
            eps[i] = e.value_in_unit_system(_md_units())
        sites = np.flatnonzero(eps > 0.0)
        index = {int(p): k for k, p in enumerate(sites)}
        excluded = np.zeros((len(sites), len(sites)), dtype=bool)
        for k in range(force.getNumExceptions()):
            i, j, *_ = force.getExceptionParameters(k)
            if i in index and j in index:
                excluded[index[i], index[j]] = excluded[index[j], index[i]] = True
        if len(sites) > 6000:
            raise InputError(
                f"{len(sites)} Lennard-Jones sites: the all-pairs ΔU is meant for solvent boxes (a few thousand atoms), "
                "not for complexes"
            )
        ii, jj = np.triu_indices(len(sites), k=1)
        keep = ~excluded[ii, jj]
        self._i, self._j = sites[ii[keep]], sites[jj[keep]]
        self._sigma = 0.5 * (sigma[self._i] + sigma[self._j])
        self._eps = np.sqrt(eps[self._i] * eps[self._j])
        self.n_particles = n
        self.n_pairs = len(self._i)
        self.lrc_old = _lrc_coefficient(system, self.old)
        self.lrc_new = _lrc_coefficient(system, new)

    def pair_energy(self, positions: np.ndarray, box: np.ndarray) -> float:
        """Σ over non-exception pairs and their periodic images of LJ × (S_new - S_old) for one frame (kJ/mol).

        ``positions`` (n, 3) and ``box`` (3, 3, rows are the cell vectors) in nm. Every image within the cutoff
        counts, so a cutoff beyond the cell's inscribed radius is the periodic lattice's energy with that cutoff;
        below it (where OpenMM's own minimum-image rule holds) the two agree exactly.
        """
        rmax = max(self.old.cutoff_nm, self.new.cutoff_nm)
        rmin = min(self.old.inner_nm, self.new.inner_nm)
        box = np.asarray(box, dtype=float)
        volume = abs(np.linalg.det(box))
        # Distance between opposite faces along each reciprocal direction.
        widths = np.array([volume / np.linalg.norm(np.cross(box[(k + 1) % 3], box[(k + 2) % 3])) for k in range(3)])
        shortest = min(np.linalg.norm(v) for v in box)
        if shortest <= rmax:
            raise InputError(
                f"the cutoff {rmax:g} nm reaches a particle's own periodic image ({shortest:.3f} nm away): the box is "
                "too small for it"
            )
        frac = (positions[self._j] - positions[self._i]) @ np.linalg.inv(box)
        frac -= np.round(frac)
        shells = [range(-m, m + 1) for m in np.floor(rmax / widths + 0.5).astype(int)]
        total = 0.0
        for n in itertools.product(*shells):
            d = (frac + np.asarray(n, dtype=float)) @ box
            r2 = np.einsum("ij,ij->i", d, d)
            near = (r2 < rmax**2) & (r2 >= rmin**2)
            if not near.any():
                continue
            r = np.sqrt(r2[near])
            sr6 = (self._sigma[near] / r) ** 6
            lj = 4.0 * self._eps[near] * (sr6 * sr6 - sr6)
            total += float(np.sum(lj * (self.new.switch(r) - self.old.switch(r))))
        return total

    def energies(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """ΔU (kJ/mol) of every frame: ``frames`` (n_frames, n_particles, 3) and ``boxes`` (n_frames, 3, 3), nm."""
        frames = np.asarray(frames, dtype=float)
        boxes = np.asarray(boxes, dtype=float)
        if frames.ndim != 3 or frames.shape[1] != self.n_particles:
            raise InputError(f"frames have shape {frames.shape}; the system has {self.n_particles} particles")
        out = np.empty(len(frames))
        for k, (x, box) in enumerate(zip(frames, boxes, strict=True)):
            volume = abs(np.linalg.det(box))
            out[k] = self.pair_energy(x, box) + (self.lrc_new - self.lrc_old) / volume
        return out
