"""Valence terms (bonds, angles, torsions) of the single-topology hybrid system.

Every valence term of system A and of system B is translated into hybrid particle indices and sorted into

* **static** terms, identical at every λ and put into native OpenMM forces (fast):
  environment terms (taken once, from A), the terms that keep the unique (dummy) atoms of A or of B attached at
  their dummy end (:mod:`fep.alchemy.junctions`: the Z-matrix-like placement terms of each dummy group, kept at
  full strength at both ends) and core terms that are identical in A and B;
* **λ-dependent** terms: core terms present in only one end state, or with different parameters, and the mixed
  dummy terms that would couple a dummy group to the physical geometry (switched off at the dummy end). They go
  into ``Custom{Bond,Angle,Torsion}Force`` objects scaled linearly in ``lambda_bonded``: an A term by
  ``1 - lambda_bonded``, a B term by ``lambda_bonded`` (energies, hence exact at both ends).

Core terms are compared as multisets of (canonical atoms, parameters), so a torsion with several periodicities
of which only one changes keeps the unchanged ones static.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

__all__ = [
    "ROLE_CORE",
    "ROLE_ENV",
    "ROLE_UNIQUE_A",
    "ROLE_UNIQUE_B",
    "add_valence_forces",
    "canonical_atoms",
    "collect_terms",
]

log = logging.getLogger(__name__)

ROLE_ENV, ROLE_CORE, ROLE_UNIQUE_A, ROLE_UNIQUE_B = 0, 1, 2, 3

BOND_EXPRESSION = "(w0 + w1*lambda_bonded)*0.5*k*(r - r0)^2"
ANGLE_EXPRESSION = "(w0 + w1*lambda_bonded)*0.5*k*(theta - theta0)^2"
TORSION_EXPRESSION = "(w0 + w1*lambda_bonded)*k*(1 + cos(periodicity*theta - phase))"


def canonical_atoms(atoms: tuple[int, ...]) -> tuple[int, ...]:
    """Bonds, angles and torsions are unchanged when their atom order is reversed."""
    rev = tuple(reversed(atoms))
    return min(atoms, rev)


def collect_terms(system, to_h: np.ndarray, kind: str) -> list[tuple[tuple[int, ...], tuple]]:
    """All terms of one kind in ``system`` as (hybrid atoms in canonical order, parameters)."""
    import openmm
    from openmm import _openmm  # unit-free SWIG getters: ~10x faster on 30k-particle systems

    cls, count, get = {
        "bond": (openmm.HarmonicBondForce, "getNumBonds", _openmm.HarmonicBondForce_getBondParameters),
        "angle": (openmm.HarmonicAngleForce, "getNumAngles", _openmm.HarmonicAngleForce_getAngleParameters),
        "torsion": (openmm.PeriodicTorsionForce, "getNumTorsions", _openmm.PeriodicTorsionForce_getTorsionParameters),
    }[kind]
    n_atoms = {"bond": 2, "angle": 3, "torsion": 4}[kind]
    to_h = to_h.tolist()
    out = []
    for force in system.getForces():
        if not isinstance(force, cls):
            continue
        for n in range(getattr(force, count)()):
            values = get(force, n)
            atoms = tuple(to_h[a] for a in values[:n_atoms])
            params = tuple(values[n_atoms:])
            if kind == "torsion":
                params = (int(params[0]), float(params[1]), float(params[2]))
            out.append((canonical_atoms(atoms), params))
    return out


def _split_terms(
    terms_a: Sequence[tuple[tuple[int, ...], tuple]],
    terms_b: Sequence[tuple[tuple[int, ...], tuple]],
    role: np.ndarray,
    switched_a: Collection[tuple[int, ...]] = (),
    switched_b: Collection[tuple[int, ...]] = (),
) -> tuple[list, list, list]:
    """Sort terms into static, A-only (scaled by 1-λ) and B-only (scaled by λ); dummy terms in ``switched_a``
    (``switched_b``) go with the A-only (B-only) terms."""
    static: list = []
    pool_a: Counter = Counter()
    pool_b: Counter = Counter()
    switched_only_a: list = []
    switched_only_b: list = []
    role = role.tolist()
    for atoms, params in terms_a:
        roles = [role[a] for a in atoms]
        if ROLE_UNIQUE_A in roles and atoms in switched_a:
            switched_only_a.append((atoms, params))
        elif ROLE_UNIQUE_A in roles or all(r == ROLE_ENV for r in roles):
            static.append((atoms, params))
        else:
            pool_a[(atoms, params)] += 1
    for atoms, params in terms_b:
        roles = [role[a] for a in atoms]
        if ROLE_UNIQUE_B in roles and atoms in switched_b:
            switched_only_b.append((atoms, params))
        elif ROLE_UNIQUE_B in roles:
            static.append((atoms, params))
        elif all(r == ROLE_ENV for r in roles):
            continue  # the environment is identical in A and B: taken once, from A
        else:
            pool_b[(atoms, params)] += 1
    common = pool_a & pool_b
    for key, count in common.items():
        static.extend([key] * count)
    only_a = [key for key, count in (pool_a - common).items() for _ in range(count)] + switched_only_a
    only_b = [key for key, count in (pool_b - common).items() for _ in range(count)] + switched_only_b
    return static, sorted(only_a), sorted(only_b)


def add_valence_forces(
    hybrid,
    system_a,
    system_b,
    a_to_h: np.ndarray,
    b_to_h: np.ndarray,
    role: np.ndarray,
    static_group: int,
    lambda_group: int,
    switched_a: Collection[tuple[str, tuple[int, ...]]] = (),
    switched_b: Collection[tuple[str, tuple[int, ...]]] = (),
) -> dict[str, int]:
    """Add the hybrid's bond, angle and torsion forces to ``hybrid``.

    Parameters
    ----------
    hybrid : openmm.System
        The hybrid system (particles already added).
    system_a, system_b : openmm.System
        The plain end states.
    a_to_h : ndarray of int, shape (N_a,)
        Hybrid index of each particle of A.
    b_to_h : ndarray of int, shape (N_b,)
        Hybrid index of each particle of B.
    role : ndarray of int, shape (N_hybrid,)
        ``ROLE_ENV``, ``ROLE_CORE``, ``ROLE_UNIQUE_A`` or ``ROLE_UNIQUE_B`` per hybrid particle.
    static_group, lambda_group : int
        Force groups of the λ-independent and the λ-dependent valence forces.
    switched_a, switched_b : collection of (kind, atoms)
        Mixed dummy terms of A's (B's) unique atoms to switch off at their dummy end
        (:func:`fep.alchemy.junctions.switched_dummy_terms`).

    Returns
    -------
    dict of str to int
        Number of λ-dependent terms per kind (``"bond"``, ``"angle"``, ``"torsion"``).
    """
    import openmm

    def split(kind: str) -> tuple[list, list, list]:
        return _split_terms(
            collect_terms(system_a, a_to_h, kind),
            collect_terms(system_b, b_to_h, kind),
            role,
            {atoms for k, atoms in switched_a if k == kind},
            {atoms for k, atoms in switched_b if k == kind},
        )

    counts = {}
    # bonds
    static, only_a, only_b = split("bond")
    bonds = openmm.HarmonicBondForce()
    bonds.setName("hybrid_bonds")
    for (i, j), (r0, k) in static:
        bonds.addBond(i, j, r0, k)
    _add_static(hybrid, bonds, static_group)
    custom = openmm.CustomBondForce(BOND_EXPRESSION)
    custom.setName("hybrid_bonds_lambda")
    custom.addGlobalParameter("lambda_bonded", 0.0)
    for name in ("w0", "w1", "r0", "k"):
        custom.addPerBondParameter(name)
    for w, terms in (((1.0, -1.0), only_a), ((0.0, 1.0), only_b)):
        for (i, j), (r0, k) in terms:
            custom.addBond(i, j, [*w, r0, k])
    counts["bond"] = custom.getNumBonds()
    _add_lambda(hybrid, custom, custom.getNumBonds(), lambda_group)

    # angles
    static, only_a, only_b = split("angle")
    angles = openmm.HarmonicAngleForce()
    angles.setName("hybrid_angles")
    for (i, j, m), (theta0, k) in static:
        angles.addAngle(i, j, m, theta0, k)
    _add_static(hybrid, angles, static_group)
    custom = openmm.CustomAngleForce(ANGLE_EXPRESSION)
    custom.setName("hybrid_angles_lambda")
    custom.addGlobalParameter("lambda_bonded", 0.0)
    for name in ("w0", "w1", "theta0", "k"):
        custom.addPerAngleParameter(name)
    for w, terms in (((1.0, -1.0), only_a), ((0.0, 1.0), only_b)):
        for (i, j, m), (theta0, k) in terms:
            custom.addAngle(i, j, m, [*w, theta0, k])
    counts["angle"] = custom.getNumAngles()
    _add_lambda(hybrid, custom, custom.getNumAngles(), lambda_group)

    # torsions
    static, only_a, only_b = split("torsion")
    torsions = openmm.PeriodicTorsionForce()
    torsions.setName("hybrid_torsions")
    for (i, j, m, q), (per, phase, k) in static:
        torsions.addTorsion(i, j, m, q, per, phase, k)
    _add_static(hybrid, torsions, static_group)
    custom = openmm.CustomTorsionForce(TORSION_EXPRESSION)
    custom.setName("hybrid_torsions_lambda")
    custom.addGlobalParameter("lambda_bonded", 0.0)
    for name in ("w0", "w1", "periodicity", "phase", "k"):
        custom.addPerTorsionParameter(name)
    for w, terms in (((1.0, -1.0), only_a), ((0.0, 1.0), only_b)):
        for (i, j, m, q), (per, phase, k) in terms:
            custom.addTorsion(i, j, m, q, [*w, float(per), phase, k])
    counts["torsion"] = custom.getNumTorsions()
    _add_lambda(hybrid, custom, custom.getNumTorsions(), lambda_group)
    log.debug("λ-dependent valence terms: %s", counts)
    return counts


def _add_static(hybrid, force, group: int) -> None:
    n = {"HarmonicBondForce": "getNumBonds", "HarmonicAngleForce": "getNumAngles"}.get(
        type(force).__name__, "getNumTorsions"
    )
    if getattr(force, n)() == 0:
        return
    force.setForceGroup(group)
    hybrid.addForce(force)


def _add_lambda(hybrid, force, n_terms: int, group: int) -> None:
    if n_terms == 0:
        return
    force.setForceGroup(group)
    hybrid.addForce(force)
