"""Nonbonded part of the single-topology hybrid system: one NonbondedForce with parameter offsets, a small
softcore force for the unique atoms only, and an exact, λ-cheap long-range dispersion correction.

Design (all energies exact at both end states)
----------------------------------------------
``NonbondedForce`` (the bulk, PME):
    environment atoms keep their parameters; core (mapped) atoms start at A's charge/σ/ε and move to B's
    through particle parameter offsets on ``lambda_electrostatics_core`` (charge) and ``lambda_sterics_core``
    (σ, ε). Unique A atoms carry their A charge, scaled to zero by an offset on ``lambda_electrostatics_a``;
    unique B atoms start uncharged and get their charge through ``lambda_electrostatics_b``. Unique atoms have
    ε = 0 here: their Lennard-Jones interactions live in the softcore force. Exceptions (1-2, 1-3 exclusions and
    scaled 1-4 pairs) of A and B are merged: unique-A exceptions scale to zero with
    ``lambda_electrostatics_a``/``lambda_sterics_a``, unique-B ones grow with the ``_b`` parameters, core
    exceptions interpolate (an exception present in only one end state interpolates from/to the plain combined
    parameters of the pair). Every unique-A × unique-B pair is excluded: they never interact.
``CustomNonbondedForce`` (softcore LJ, Beutler form, α = 0.5):
    interaction groups unique-A × (everything but unique B) and unique-B × (everything but unique A), so its
    cost scales with the few unique atoms, not with the box. Unique-A pairs use A parameters of both atoms and
    ``1 - lambda_sterics_a``; unique-B pairs B parameters and ``lambda_sterics_b``. Exclusions = the
    NonbondedForce exceptions (their LJ is in the exception). No long-range correction on this force.
Long-range dispersion correction:
    OpenMM computes the NonbondedForce dispersion coefficient once, when the context is created (and on
    ``updateParametersInContext``), from the particle parameters at the *default* values of the offset
    parameters; ``Context.setParameter`` never recomputes it. A ``CustomNonbondedForce`` with
    ``setUseLongRangeCorrection(True)`` instead re-integrates its correction over every pair of particle
    classes whenever any of its global parameters changes, which is what makes softcore forces with LRC slow
    on λ switches. Here the NonbondedForce keeps its (λ-independent) correction for the hybrid's λ = 0
    parameters, and a one-pair ``CustomNonbondedForce`` (interaction group of two particles, energy
    ``(c0 + c1*lambda_sterics_core)*step(r - rc)/r^6``, zero inside the cutoff) adds the rest: its correction
    ``(c0 + c1 λ)·K/V`` is re-integrated on a λ change for one class pair only (microseconds), and is chosen so
    that the total equals plain A's correction at λ = 0 and plain B's at λ = 1, volume dependence included
    (correct under a barostat).

What OpenMM 8.6 does on ``Context.setParameter`` (read from its kernels, measured in benchmarks/hybrid_speed.py)
-------------------------------------------------------------------------------------------------------------
* NonbondedForce with offsets: CPU/Reference recompute the particle and exception parameters (one O(N) loop)
  only when a global parameter changed; CUDA/OpenCL run a small O(N) parameter kernel on every evaluation as
  soon as the force has any offset (the price of offsets on GPU, tens of µs). The dispersion coefficient is
  never recomputed (it is fixed at context creation, from the default parameter values).
* CustomNonbondedForce: nothing is recomputed unless it has a long-range correction, which is re-integrated
  over all its particle-class pairs (in its interaction groups) whenever any of its global parameters changes
  (the softcore force here has none; the one-pair dispersion force re-integrates one class pair).
* Custom bonded forces: nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from fep.alchemy.lambdas import LAMBDA_PARAMETERS
from fep.alchemy.valence import ROLE_CORE, ROLE_ENV, ROLE_UNIQUE_A, ROLE_UNIQUE_B
from mlfep_core import HybridNonbondedError
from mlfep_core.units import openmm_value as _v

__all__ = [
    "LAMBDA_PARAMETERS",
    "SOFTCORE_ALPHA",
    "NonbondedFacts",
    "add_nonbonded_forces",
    "dispersion_coefficient",
]

log = logging.getLogger(__name__)

SOFTCORE_ALPHA = 0.5

SOFTCORE_EXPRESSION = (
    "lam*4*eps*(1/x^2 - 1/x);"
    "x = {alpha}*(1 - lam) + (r/sig)^6;"
    "lam = isa*(1 - lambda_sterics_a) + isb*lambda_sterics_b;"
    "sig = isa*0.5*(sa1 + sa2) + isb*0.5*(sb1 + sb2);"
    "eps = isa*rea1*rea2 + isb*reb1*reb2;"
    "isa = max(ua1, ua2); isb = max(ub1, ub2)"
)
LRC_EXPRESSION = "(lrc_c0 + lrc_c1*lambda_sterics_core)*step(r - lrc_cutoff)/r^6"


def _only_nonbonded(system, label: str):
    import openmm

    forces = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(forces) != 1:
        raise HybridNonbondedError(f"system {label} has {len(forces)} NonbondedForce objects; exactly one is needed")
    return forces[0]


def _particle_params(force) -> np.ndarray:
    """Charge (e), sigma (nm), epsilon (kJ/mol) of every particle, shape (N, 3)."""
    from openmm import _openmm  # the unit-free SWIG getters: ~10x faster on 30k-particle systems

    get = _openmm.NonbondedForce_getParticleParameters
    return np.array([get(force, i) for i in range(force.getNumParticles())], dtype=float).reshape(-1, 3)


def _exceptions(force, to_h: np.ndarray) -> dict[tuple[int, int], tuple[float, float, float]]:
    from openmm import _openmm

    get = _openmm.NonbondedForce_getExceptionParameters
    to_h = to_h.tolist()
    out = {}
    for n in range(force.getNumExceptions()):
        i, j, qq, s, e = get(force, n)
        hi, hj = to_h[i], to_h[j]
        out[(hi, hj) if hi < hj else (hj, hi)] = (qq, s, e)
    return out


def dispersion_coefficient(force, params: np.ndarray | None = None) -> float:
    """The long-range dispersion coefficient ``C`` (energy = C / V, kJ/mol·nm³) OpenMM uses for a NonbondedForce.

    OpenMM's formula (NonbondedForceImpl::calcDispersionCorrection) over the particle classes (distinct σ, ε at
    the default values of the offset parameters, i.e. the base values here): ``C = 8πN² (S12/(9 rc⁹) −
    S6/(3 rc³)) / (N(N+1)/2)`` with ``S_k`` the sum of ε_ij σ_ij^k over all pairs of particles including
    i = j (Lorentz-Berthelot combination). With a switching function the exact value is taken from OpenMM
    itself (:func:`dispersion_coefficient_openmm`). 0 without a periodic cutoff method or with the correction off.
    """
    import openmm

    if not force.getUseDispersionCorrection() or force.getNonbondedMethod() in (
        openmm.NonbondedForce.NoCutoff,
        openmm.NonbondedForce.CutoffNonPeriodic,
    ):
        return 0.0
    if force.getUseSwitchingFunction():
        return dispersion_coefficient_openmm(force)
    params = _particle_params(force) if params is None else params
    n = len(params)
    classes, counts = np.unique(params[:, 1:], axis=0, return_counts=True)
    sigma = 0.5 * (classes[:, 0][:, None] + classes[:, 0][None, :])
    epsilon = np.sqrt(classes[:, 1][:, None] * classes[:, 1][None, :])
    weight = counts[:, None].astype(float) * counts[None, :]
    weight[np.diag_indices_from(weight)] = counts * (counts + 1) / 2.0
    upper = np.triu(np.ones_like(weight, dtype=bool))
    s6 = sigma**6
    sum12 = float(np.sum((weight * epsilon * s6 * s6)[upper]))
    sum6 = float(np.sum((weight * epsilon * s6)[upper]))
    cutoff = _v(force.getCutoffDistance())
    interactions = n * (n + 1) / 2.0
    return 8.0 * n * n * math.pi * (sum12 / interactions / (9.0 * cutoff**9) - sum6 / interactions / (3.0 * cutoff**3))


def dispersion_coefficient_openmm(force, n_particles: int | None = None) -> float:
    """OpenMM's own long-range dispersion coefficient ``C`` (energy = C / V, kJ/mol·nm³) of a NonbondedForce.

    Computed by OpenMM itself: the particles' σ, ε (base values, i.e. offsets at 0) in a copy of the force
    with zero charges, placed on a lattice wider than the cutoff in a large box, so that no pair is within
    the cutoff and the energy is the correction alone. Returns 0 without a periodic cutoff method or with
    the correction off.
    """
    import openmm

    if not force.getUseDispersionCorrection() or force.getNonbondedMethod() in (
        openmm.NonbondedForce.NoCutoff,
        openmm.NonbondedForce.CutoffNonPeriodic,
    ):
        return 0.0
    params = _particle_params(force)
    n = n_particles if n_particles is not None else len(params)
    if n != len(params):
        raise HybridNonbondedError(f"dispersion_coefficient: force has {len(params)} particles, expected {n}")
    cutoff = _v(force.getCutoffDistance())
    spacing = 2.0 * cutoff + 0.1
    side = math.ceil(n ** (1.0 / 3.0))
    length = side * spacing
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(length, 0, 0), openmm.Vec3(0, length, 0), openmm.Vec3(0, 0, length))
    copy = openmm.NonbondedForce()
    copy.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    copy.setCutoffDistance(cutoff)
    copy.setUseSwitchingFunction(force.getUseSwitchingFunction())
    copy.setSwitchingDistance(force.getSwitchingDistance())
    copy.setUseDispersionCorrection(True)
    for _q, s, e in params:
        system.addParticle(1.0)
        copy.addParticle(0.0, s, e)
    system.addForce(copy)
    grid = np.indices((side, side, side)).reshape(3, -1).T[:n] * spacing
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(grid)
    energy = _v(context.getState(getEnergy=True).getPotentialEnergy())
    del context
    return energy * length**3


def _copy_settings(source, target) -> None:
    import openmm

    method = source.getNonbondedMethod()
    if method == openmm.NonbondedForce.LJPME:
        raise HybridNonbondedError("LJPME is not supported by the hybrid topology; use PME")
    target.setNonbondedMethod(method)
    target.setCutoffDistance(source.getCutoffDistance())
    target.setUseSwitchingFunction(source.getUseSwitchingFunction())
    target.setSwitchingDistance(source.getSwitchingDistance())
    target.setEwaldErrorTolerance(source.getEwaldErrorTolerance())
    target.setReactionFieldDielectric(source.getReactionFieldDielectric())
    target.setPMEParameters(*source.getPMEParameters())
    target.setExceptionsUsePeriodicBoundaryConditions(source.getExceptionsUsePeriodicBoundaryConditions())
    target.setUseDispersionCorrection(source.getUseDispersionCorrection())


def _check_same_settings(nb_a, nb_b) -> None:
    checks = {
        "nonbonded method": (nb_a.getNonbondedMethod(), nb_b.getNonbondedMethod()),
        "cutoff": (_v(nb_a.getCutoffDistance()), _v(nb_b.getCutoffDistance())),
        "switching function": (nb_a.getUseSwitchingFunction(), nb_b.getUseSwitchingFunction()),
        "dispersion correction": (nb_a.getUseDispersionCorrection(), nb_b.getUseDispersionCorrection()),
    }
    for what, (a, b) in checks.items():
        if a != b:
            raise HybridNonbondedError(f"end states differ in their {what} ({a} vs {b}); build both with one setting")


@dataclass(frozen=True)
class NonbondedFacts:
    """What :func:`add_nonbonded_forces` built: dispersion coefficients (kJ/mol·nm³) of A, B and the hybrid
    NonbondedForce at its base (λ = 0) parameters, and the counts of parameter offsets and exceptions."""

    dispersion_coefficient_a: float
    dispersion_coefficient_b: float
    dispersion_coefficient_nonbonded: float
    n_parameter_offsets: int
    n_exceptions: int


def add_nonbonded_forces(
    hybrid,
    system_a,
    system_b,
    a_to_h: np.ndarray,
    b_to_h: np.ndarray,
    h_to_a: np.ndarray,
    h_to_b: np.ndarray,
    role: np.ndarray,
    groups: dict[str, int],
    softcore_alpha: float = SOFTCORE_ALPHA,
    coion: tuple[int, ...] = (),
) -> NonbondedFacts:
    """Add the hybrid NonbondedForce, the softcore force and the dispersion-correction force.

    Parameters
    ----------
    hybrid : openmm.System
        The hybrid system (particles already added).
    system_a, system_b : openmm.System
        Plain end states.
    a_to_h, b_to_h : ndarray of int, shape (N_a,), (N_b,)
        Hybrid index of each particle of A / of B.
    h_to_a, h_to_b : ndarray of int, shape (N_hybrid,)
        Index in A / in B of each hybrid particle, -1 where it has none.
    role : ndarray of int, shape (N_hybrid,)
        Role of each hybrid particle (environment, core, unique A, unique B).
    groups : dict
        Force groups: keys ``"nonbonded"``, ``"softcore"``, ``"dispersion"``.
    softcore_alpha : float
        Softcore α of the Beutler potential.
    coion : tuple of int
        Hybrid indices (O, H, H) of the alchemical co-ion of a charge-changing edge (:func:`_add_coion_offsets`).

    Returns
    -------
    NonbondedFacts
        For :class:`~fep.alchemy.hybrid.HybridLegInfo`.
    """
    nb_a, nb_b, pa, pb = _end_state_nonbonded(system_a, system_b)
    nb = _empty_hybrid_nonbonded(nb_a)
    sc_params, hybrid_params, n_offsets = _add_particles(nb, role, pa, pb, h_to_a, h_to_b)
    if coion:
        n_offsets += _add_coion_offsets(nb, coion, role, pa, pb, h_to_a, h_to_b, sc_params)
    pairs = _add_exceptions(nb, role, pa, pb, h_to_a, h_to_b, _exceptions(nb_a, a_to_h), _exceptions(nb_b, b_to_h))
    nb.setForceGroup(groups["nonbonded"])
    nb.setReciprocalSpaceForceGroup(-1)
    softcore = _softcore_force(nb, role, sc_params, pairs, softcore_alpha)
    if softcore is not None:
        softcore.setForceGroup(groups["softcore"])
        hybrid.addForce(softcore)
    hybrid.addForce(nb)
    c_a = dispersion_coefficient(nb_a, pa)
    c_b = dispersion_coefficient(nb_b, pb)
    c_h = dispersion_coefficient(nb, hybrid_params)
    if nb.getUseDispersionCorrection() and (c_a != c_h or c_b != c_h):
        lrc = _dispersion_force(nb, hybrid.getNumParticles(), c_a, c_b, c_h, pairs)
        lrc.setForceGroup(groups["dispersion"])
        hybrid.addForce(lrc)
    return NonbondedFacts(c_a, c_b, c_h, n_offsets, nb.getNumExceptions())


def _end_state_nonbonded(system_a, system_b):
    """The two NonbondedForces (same settings; same net charge when periodic) and their particle parameters."""
    import openmm

    nb_a = _only_nonbonded(system_a, "A")
    nb_b = _only_nonbonded(system_b, "B")
    _check_same_settings(nb_a, nb_b)
    pa = _particle_params(nb_a)
    pb = _particle_params(nb_b)
    charge_a, charge_b = float(pa[:, 0].sum()), float(pb[:, 0].sum())
    periodic = nb_a.getNonbondedMethod() not in (
        openmm.NonbondedForce.NoCutoff,
        openmm.NonbondedForce.CutoffNonPeriodic,
    )
    if periodic and abs(charge_a - charge_b) > 1e-3:
        raise HybridNonbondedError(
            f"the net charge of the periodic box changes from {charge_a:+.3f} e (A) to {charge_b:+.3f} e (B): a "
            "charge-changing edge needs its co-ion (build the end states with fep.systems.endstates)"
        )
    return nb_a, nb_b, pa, pb


def _add_coion_offsets(nb, coion, role, pa, pb, h_to_a, h_to_b, sc_params) -> int:
    """Offsets that turn the co-ion water (O, H, H; environment particles with A's parameters as base) into B's
    ion while keeping the box exactly neutral at every λ, whatever the schedule.

    The ligand's net charge at λ is Q_A + λ_ec ΔQ_core − λ_ea Q_uA + λ_eb Q_uB (core charges move on
    ``lambda_electrostatics_core``, unique-A charges vanish on ``_a``, unique-B ones appear on ``_b``). The
    hydrogens' charges go to zero on ``lambda_electrostatics_core`` and the oxygen takes their charge back plus
    the opposite of every ligand term on the same parameter: +Q_uA on ``_a``, −Q_uB on ``_b``, and on ``_core``
    what makes it end at the ion's charge. Summed over the box, every λ term then cancels (tested per window).
    The oxygen's σ and ε move to the ion's on ``lambda_sterics_core``. Returns the number of offsets added.
    """
    oxygen, *hydrogens = coion
    q_ua = float(sum(pa[h_to_a[h], 0] for h in np.flatnonzero(role == ROLE_UNIQUE_A)))
    q_ub = float(sum(pb[h_to_b[h], 0] for h in np.flatnonzero(role == ROLE_UNIQUE_B)))
    qa_o, sa_o, ea_o = pa[h_to_a[oxygen]]
    qb_o, sb_o, eb_o = pb[h_to_b[oxygen]]
    count = 0
    for h in hydrogens:
        qa_h, qb_h = pa[h_to_a[h], 0], pb[h_to_b[h], 0]
        if qb_h != 0.0:
            raise HybridNonbondedError(f"co-ion hydrogen {h} keeps a charge of {qb_h:+.3f} e in B")
        nb.addParticleParameterOffset("lambda_electrostatics_core", h, -qa_h, 0.0, 0.0)
        count += 1
    nb.addParticleParameterOffset("lambda_electrostatics_core", oxygen, qb_o - qa_o - q_ua + q_ub, 0.0, 0.0)
    if q_ua:
        nb.addParticleParameterOffset("lambda_electrostatics_a", oxygen, q_ua, 0.0, 0.0)
    if q_ub:
        nb.addParticleParameterOffset("lambda_electrostatics_b", oxygen, -q_ub, 0.0, 0.0)
    nb.addParticleParameterOffset("lambda_sterics_core", oxygen, 0.0, sb_o - sa_o, eb_o - ea_o)
    sc_params[oxygen] = (sa_o, ea_o, sb_o, eb_o, 0, 0)
    return count + 2 + bool(q_ua) + bool(q_ub)


def _empty_hybrid_nonbonded(nb_a):
    import openmm

    nb = openmm.NonbondedForce()
    nb.setName("hybrid_nonbonded")
    _copy_settings(nb_a, nb)
    for name in LAMBDA_PARAMETERS:
        nb.addGlobalParameter(name, 0.0)
    return nb


def _add_particles(nb, role, pa, pb, h_to_a, h_to_b) -> tuple[np.ndarray, np.ndarray, int]:
    """Base (λ = 0) parameters and λ offsets of every hybrid particle.

    Returns the softcore per-particle parameters (σ_A, ε_A, σ_B, ε_B, unique-A flag, unique-B flag), the base
    charge, σ, ε of each particle and the number of offsets added.
    """
    n = len(role)
    n_offsets = 0
    sc_params = np.zeros((n, 6))
    hybrid_params = np.zeros((n, 3))
    role_list = role.tolist()
    pa_list, pb_list = pa.tolist(), pb.tolist()
    h_to_a_list, h_to_b_list = h_to_a.tolist(), h_to_b.tolist()

    def offset(name: str, h: int, dq: float, ds: float, de: float) -> None:
        nonlocal n_offsets
        nb.addParticleParameterOffset(name, h, dq, ds, de)
        n_offsets += 1

    for h in range(n):
        r = role_list[h]
        if r == ROLE_ENV:
            q, s, e = pa_list[h_to_a_list[h]]
            base = (q, s, e)
            sc_params[h] = (s, e, s, e, 0, 0)
        elif r == ROLE_CORE:
            qa, sa, ea = pa_list[h_to_a_list[h]]
            qb, sb, eb = pb_list[h_to_b_list[h]]
            base = (qa, sa, ea)
            if qb != qa:
                offset("lambda_electrostatics_core", h, qb - qa, 0.0, 0.0)
            if sb != sa or eb != ea:
                offset("lambda_sterics_core", h, 0.0, sb - sa, eb - ea)
            sc_params[h] = (sa, ea, sb, eb, 0, 0)
        elif r == ROLE_UNIQUE_A:
            qa, sa, ea = pa_list[h_to_a_list[h]]
            base = (qa, sa, 0.0)
            if qa != 0.0:
                offset("lambda_electrostatics_a", h, -qa, 0.0, 0.0)
            sc_params[h] = (sa, ea, sa, 0.0, 1, 0)
        else:
            qb, sb, eb = pb_list[h_to_b_list[h]]
            base = (0.0, sb, 0.0)
            if qb != 0.0:
                offset("lambda_electrostatics_b", h, qb, 0.0, 0.0)
            sc_params[h] = (sb, 0.0, sb, eb, 0, 1)
        nb.addParticle(*base)
        hybrid_params[h] = base
    return sc_params, hybrid_params, n_offsets


def _mixed(params: np.ndarray, idx: np.ndarray, i: int, j: int) -> tuple[float, float, float]:
    """The Lorentz–Berthelot pair parameters (qq, σ, ε) of hybrid particles i and j in one end state."""
    qi, si, ei = params[idx[i]]
    qj, sj, ej = params[idx[j]]
    return qi * qj, 0.5 * (si + sj), math.sqrt(ei * ej)


def _add_exceptions(nb, role, pa, pb, h_to_a, h_to_b, exc_a, exc_b) -> list[tuple[int, int]]:
    """Every exception of A and B with its λ offsets, and unique-A × unique-B exclusions; returns the pairs."""
    role_list = role.tolist()
    pairs: list[tuple[int, int]] = []
    for key in sorted(set(exc_a) | set(exc_b)):
        i, j = key
        ri, rj = role_list[i], role_list[j]
        if ri == ROLE_ENV and rj == ROLE_ENV:
            if key not in exc_a:
                raise HybridNonbondedError(f"environment exception {key} exists in B but not in A")
            nb.addException(i, j, *exc_a[key])
        elif ROLE_UNIQUE_A in (ri, rj):
            _vanishing_exception(nb, i, j, exc_a[key], "a", sign=-1.0)
        elif ROLE_UNIQUE_B in (ri, rj):
            _vanishing_exception(nb, i, j, exc_b[key], "b", sign=1.0)
        else:
            va = exc_a.get(key) or _mixed(pa, h_to_a, i, j)
            vb = exc_b.get(key) or _mixed(pb, h_to_b, i, j)
            idx = nb.addException(i, j, *va)
            if vb[0] != va[0]:
                nb.addExceptionParameterOffset("lambda_electrostatics_core", idx, vb[0] - va[0], 0.0, 0.0)
            if vb[1] != va[1] or vb[2] != va[2]:
                nb.addExceptionParameterOffset("lambda_sterics_core", idx, 0.0, vb[1] - va[1], vb[2] - va[2])
        pairs.append(key)
    for i in np.flatnonzero(role == ROLE_UNIQUE_A).tolist():
        for j in np.flatnonzero(role == ROLE_UNIQUE_B).tolist():
            nb.addException(int(i), int(j), 0.0, 1.0, 0.0)
            pairs.append((int(i), int(j)))
    return pairs


def _vanishing_exception(nb, i: int, j: int, params, side: str, sign: float) -> None:
    """An exception of a unique atom of ``side`` ('a': present at λ = 0, 'b': at λ = 1) and its offsets."""
    qq, s, e = params
    if side == "a":
        idx = nb.addException(i, j, qq, s, e)
    else:
        idx = nb.addException(i, j, 0.0, s, 0.0)
    if qq != 0.0:
        nb.addExceptionParameterOffset(f"lambda_electrostatics_{side}", idx, sign * qq, 0.0, 0.0)
    if e != 0.0:
        nb.addExceptionParameterOffset(f"lambda_sterics_{side}", idx, 0.0, 0.0, sign * e)


def _softcore_force(nb, role, sc_params: np.ndarray, pairs, softcore_alpha: float):
    """The softcore Lennard-Jones force of the unique atoms (None when the edge has none)."""
    import openmm

    unique_a = np.flatnonzero(role == ROLE_UNIQUE_A)
    unique_b = np.flatnonzero(role == ROLE_UNIQUE_B)
    if not (len(unique_a) or len(unique_b)):
        return None
    sc = openmm.CustomNonbondedForce(SOFTCORE_EXPRESSION.format(alpha=repr(float(softcore_alpha))))
    sc.setName("hybrid_softcore")
    sc.addGlobalParameter("lambda_sterics_a", 0.0)
    sc.addGlobalParameter("lambda_sterics_b", 0.0)
    for name in ("sa", "rea", "sb", "reb", "ua", "ub"):
        sc.addPerParticleParameter(name)
    sc_params = sc_params.copy()
    sc_params[:, 1] = np.sqrt(sc_params[:, 1])  # per-particle sqrt(ε): no square root per pair
    sc_params[:, 3] = np.sqrt(sc_params[:, 3])
    for row in sc_params.tolist():
        sc.addParticle(row)
    method = nb.getNonbondedMethod()
    if method == openmm.NonbondedForce.NoCutoff:
        sc.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    elif method == openmm.NonbondedForce.CutoffNonPeriodic:
        sc.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    else:
        sc.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    sc.setCutoffDistance(nb.getCutoffDistance())
    sc.setUseSwitchingFunction(nb.getUseSwitchingFunction())
    sc.setSwitchingDistance(nb.getSwitchingDistance())
    sc.setUseLongRangeCorrection(False)
    for i, j in pairs:
        sc.addExclusion(i, j)
    everyone = np.arange(len(role))
    if len(unique_a):
        sc.addInteractionGroup([int(x) for x in unique_a], [int(x) for x in everyone[role != ROLE_UNIQUE_B]])
    if len(unique_b):
        sc.addInteractionGroup([int(x) for x in unique_b], [int(x) for x in everyone[role != ROLE_UNIQUE_A]])
    return sc


def _dispersion_force(nb, n: int, c_a: float, c_b: float, c_h: float, pairs):
    """A one-pair force whose long-range correction makes the dispersion correction exact at both ends and
    linear in ``lambda_sterics_core`` (cheap on λ change)."""
    import openmm

    cutoff = _v(nb.getCutoffDistance())
    # energy of the one-pair force = (c0 + c1 λ) * unit / V (OpenMM normalises group pairs by N(N+1)/2)
    unit = 4.0 * math.pi * n / (n + 1) / (3.0 * cutoff**3)
    lrc = openmm.CustomNonbondedForce(LRC_EXPRESSION)
    lrc.setName("hybrid_dispersion_correction")
    lrc.addGlobalParameter("lrc_c0", (c_a - c_h) / unit)
    lrc.addGlobalParameter("lrc_c1", (c_b - c_a) / unit)
    lrc.addGlobalParameter("lrc_cutoff", cutoff)
    lrc.addGlobalParameter("lambda_sterics_core", 0.0)
    for _ in range(n):
        lrc.addParticle([])
    lrc.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    lrc.setCutoffDistance(cutoff)
    lrc.setUseLongRangeCorrection(True)
    # the CPU platform shares one neighbour list: every nonbonded force needs the same exclusions
    excluded_with_0 = set()
    for i, j in pairs:
        lrc.addExclusion(i, j)
        if i == 0:
            excluded_with_0.add(j)
    partner = next(j for j in range(1, n) if j not in excluded_with_0)
    lrc.addInteractionGroup([0], [partner])
    return lrc
