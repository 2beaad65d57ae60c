"""End-state check of a hybrid system: at λ = A (B) its energy and forces must equal those of the plain system
A (B) plus the valence terms that keep the other ligand's dummy atoms attached (its mixed terms that are
switched off at the dummy end, :mod:`fep.alchemy.junctions`, are not part of it).

This is the central correctness test of the hybrid topology (``fep check`` on the command line). Energies are
compared per term type (bonds, angles, torsions, nonbonded = NonbondedForce + softcore + dispersion forces,
other) by putting each type into its own force group in a copy of each system.

Tolerances
----------
``Reference`` (double precision): 0.01 kJ/mol per energy term and 0.01 kJ/mol/nm per force component.
``CPU`` (single precision with double accumulation; the two systems sum their terms in different orders and
groupings): ``5e-6 × |plain total energy| + 0.05`` kJ/mol, and 0.5 kJ/mol/nm per force component. These are a few
times the differences seen between two evaluations of the same water box split into different forces.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fep.sampling.platforms import select_platform

__all__ = ["CATEGORIES", "end_state_energy_check", "tolerances"]

log = logging.getLogger(__name__)

CATEGORIES = ("bonds", "angles", "torsions", "nonbonded", "other")
_CATEGORY_OF = {
    "HarmonicBondForce": "bonds",
    "CustomBondForce": "bonds",
    "HarmonicAngleForce": "angles",
    "CustomAngleForce": "angles",
    "PeriodicTorsionForce": "torsions",
    "CustomTorsionForce": "torsions",
    "NonbondedForce": "nonbonded",
    "CustomNonbondedForce": "nonbonded",
}


def tolerances(platform: str, plain_total: float = 0.0) -> tuple[float, float]:
    """``(energy kJ/mol, force kJ/mol/nm)`` tolerances of the end-state check on ``platform``."""
    if platform == "Reference":
        return 0.01, 0.01
    return 5e-6 * abs(plain_total) + 0.05, 0.5


def _orthorhombic_box(positions: np.ndarray, system) -> np.ndarray:
    """An orthorhombic box around ``positions`` in which no atom sees a periodic image within the cutoff.

    Why: OpenMM 8.6's Reference neighbour list (voxel hash) misses some pairs near the cutoff in small
    triclinic boxes, depending on atom order and position (rhombic dodecahedron of width 2.4 nm, 0.7 nm
    cutoff: up to 0.36 kJ/mol of LJ lost; the CPU platform agrees with a brute-force sum). The identity
    checked here (hybrid = plain + dummy valence) holds for any box, so on Reference the periodic systems are
    compared in this box; on CPU they are compared in their own (triclinic) box.
    """
    import openmm

    cutoff = max(
        (f.getCutoffDistance()._value for f in system.getForces() if isinstance(f, openmm.NonbondedForce)),
        default=1.0,
    )
    extent = positions.max(axis=0) - positions.min(axis=0)
    return np.diag(np.maximum(extent + cutoff + 0.2, 2.0 * cutoff + 0.2))


def _evaluate(system, positions: np.ndarray, box, platform: str, parameters: dict[str, float] | None = None):
    """Energies per category (kJ/mol) and forces (N, 3) in kJ/mol/nm of ``system`` at ``positions``."""
    import openmm
    import openmm.unit as u

    clone = openmm.XmlSerializer.clone(system)
    if box is not None:
        clone.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*map(float, row)) for row in np.asarray(box)))
    for force in clone.getForces():
        force.setForceGroup(CATEGORIES.index(_CATEGORY_OF.get(type(force).__name__, "other")))
        if isinstance(force, openmm.NonbondedForce):
            force.setReciprocalSpaceForceGroup(-1)
    context = openmm.Context(clone, openmm.VerletIntegrator(0.001), select_platform(platform))
    if box is not None:
        context.setPeriodicBoxVectors(*(openmm.Vec3(*map(float, row)) for row in np.asarray(box)))
    context.setPositions(np.asarray(positions, dtype=float))
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    energies = {}
    for group, category in enumerate(CATEGORIES):
        state = context.getState(getEnergy=True, groups={group})
        energies[category] = state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
    energies["total"] = float(sum(energies[c] for c in CATEGORIES))
    forces = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)
    del context
    return energies, np.asarray(forces)


def _dummy_valence_system(system, to_h: np.ndarray, unique: set[int], n_hybrid: int, switched=frozenset()):
    """The valence terms of ``system`` that touch one of its unique atoms, in hybrid indices, except those in
    ``switched`` ((kind, canonical atoms): off at the dummy end, :mod:`fep.alchemy.junctions`)."""
    import openmm

    from fep.alchemy.valence import canonical_atoms

    dummy = openmm.System()
    for _ in range(n_hybrid):
        dummy.addParticle(1.0)
    bonds, angles, torsions = openmm.HarmonicBondForce(), openmm.HarmonicAngleForce(), openmm.PeriodicTorsionForce()
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for n in range(force.getNumBonds()):
                i, j, r0, k = force.getBondParameters(n)
                if {int(to_h[i]), int(to_h[j])} & unique and (
                    "bond",
                    canonical_atoms((int(to_h[i]), int(to_h[j]))),
                ) not in switched:
                    bonds.addBond(int(to_h[i]), int(to_h[j]), r0, k)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for n in range(force.getNumAngles()):
                i, j, m, t0, k = force.getAngleParameters(n)
                triple = (int(to_h[i]), int(to_h[j]), int(to_h[m]))
                if set(triple) & unique and ("angle", canonical_atoms(triple)) not in switched:
                    angles.addAngle(int(to_h[i]), int(to_h[j]), int(to_h[m]), t0, k)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for n in range(force.getNumTorsions()):
                i, j, m, q, per, phase, k = force.getTorsionParameters(n)
                atoms = [int(to_h[x]) for x in (i, j, m, q)]
                if set(atoms) & unique and ("torsion", canonical_atoms(tuple(atoms))) not in switched:
                    torsions.addTorsion(*atoms, per, phase, k)
    for force in (bonds, angles, torsions):
        dummy.addForce(force)
    return dummy


def end_state_energy_check(end_states, hybrid, platform: str = "Reference") -> dict[str, Any]:
    """Compare the hybrid at λ = A and λ = B with the plain end states (+ dummy valence terms).

    Parameters
    ----------
    end_states : fep.systems.endstates.EndStates
        The plain end states the hybrid was built from.
    hybrid : fep.alchemy.hybrid.HybridLeg
    platform : str
        ``"Reference"`` (default, double precision) or ``"CPU"``.

    Returns
    -------
    dict
        ``states`` → ``A``/``B`` → ``hybrid``, ``plain``, ``dummy_valence`` and ``difference`` (each a dict of
        kJ/mol per category and ``total``) and ``max_force_difference`` (kJ/mol/nm); plus
        ``max_abs_energy_difference``, ``max_force_difference``, ``tolerance`` and ``passed``.
    """
    info = hybrid.info
    n = info.n_atoms
    n_a = info.n_atoms_a
    a_to_h = np.arange(n_a)
    b_to_h = np.asarray(info.b_to_hybrid, dtype=int)
    results: dict[str, Any] = {"edge": f"{info.ligand_a}~{info.ligand_b}", "leg": info.leg, "platform": platform}
    states = {}
    passed = True
    worst_e, worst_f = 0.0, 0.0
    tol_used = {}
    for label in ("A", "B"):
        if label == "A":
            plain_sys, plain_pos, to_h = end_states.system_a, end_states.positions_a, a_to_h
            other_sys, other_to_h, other_unique = end_states.system_b, b_to_h, set(info.unique_b)
            switched = {(k, tuple(a)) for k, a in info.switched_dummy_terms.get("B", ())}
        else:
            plain_sys, plain_pos, to_h = end_states.system_b, end_states.positions_b, b_to_h
            other_sys, other_to_h, other_unique = end_states.system_a, a_to_h, set(info.unique_a)
            switched = {(k, tuple(a)) for k, a in info.switched_dummy_terms.get("A", ())}
        box = end_states.box_vectors
        if box is not None and platform == "Reference":
            box = _orthorhombic_box(np.asarray(hybrid.positions), hybrid.system)
        plain_e, plain_f = _evaluate(plain_sys, plain_pos, box, platform)
        dummy = _dummy_valence_system(other_sys, other_to_h, other_unique, n, switched)
        dummy_e, dummy_f = _evaluate(dummy, hybrid.positions, box, "Reference")
        hyb_e, hyb_f = _evaluate(hybrid.system, hybrid.positions, box, platform, hybrid.lambda_values(label))
        expected_f = dummy_f.copy()
        expected_f[to_h] += plain_f
        diff = {c: hyb_e[c] - plain_e[c] - dummy_e[c] for c in (*CATEGORIES, "total")}
        force_diff = float(np.abs(hyb_f - expected_f).max())
        e_tol, f_tol = tolerances(platform, plain_e["total"])
        tol_used[label] = {"energy_kj_mol": e_tol, "force_kj_mol_nm": f_tol}
        ok = all(abs(v) < e_tol for v in diff.values()) and force_diff < f_tol
        passed = passed and ok
        worst_e = max(worst_e, max(abs(v) for v in diff.values()))
        worst_f = max(worst_f, force_diff)
        states[label] = {
            "hybrid": hyb_e,
            "plain": plain_e,
            "dummy_valence": dummy_e,
            "difference": diff,
            "max_force_difference": force_diff,
            "passed": ok,
        }
    results.update(
        states=states,
        max_abs_energy_difference=worst_e,
        max_force_difference=worst_f,
        tolerance=tol_used,
        passed=passed,
    )
    return results
