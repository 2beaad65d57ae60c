"""REST2 solute tempering of a hybrid system (Wang, Friesner & Berne, J. Phys. Chem. B 2011, 115, 9431).

Along the replica ladder the "hot" region (the ligand: every core and unique atom of A and B) feels its own
interactions scaled by ``s = T0/T_eff ≤ 1`` and its interactions with the environment by ``√s``, while the
environment is untouched. At the two end windows ``s = 1``: the end states are the plain systems, exactly (the
default of every REST2 parameter is the unscaled value, so ``fep check`` and the ML endpoint correction see the
plain hybrid). Replicas at low ``s`` cross torsional barriers of the ligand (≈ ``s`` × barrier) and carry the
conformations to the end states through the exchanges that already exist.

How each term is scaled, with OpenMM's parameter offsets (``q = q0 + Σ p·dq``, linear in global parameters):

``NonbondedForce`` (PME, the bulk)
    A region atom's charge becomes ``√s·q(λ)`` and its ε ``s·ε(λ)``; with Lorentz–Berthelot combination
    (``√(ε_i ε_j)``) that is ``s`` inside the region and ``√s`` to the environment for both Coulomb and LJ. As
    ``√s·q(λ) = q0 + Σ λ_k dq_k + (√s − 1)·q0 + Σ (√s − 1)·λ_k·dq_k``, the hybrid gets global parameters
    ``rest_q = √s − 1``, ``rest_e = s − 1`` and, for every λ parameter with offsets on region atoms, their
    products ``rest_q_<λ> = (√s − 1)·λ`` and ``rest_e_<λ> = (s − 1)·λ``, set per window by
    :func:`rest2_states`. Exceptions (1-4 pairs) inside the region are scaled by ``s`` (charge product and ε),
    region–environment exceptions by ``√s``; σ is never scaled.
``CustomNonbondedForce`` (softcore LJ of the unique atoms)
    The energy is multiplied by ``(1 + r_i·rest_q)(1 + r_j·rest_q)`` with ``r`` = 1 for region atoms.
Torsions
    Proper and improper torsions with all four atoms in the region are scaled by ``s``, those with some by
    ``√s``. The static ones leave the λ-independent force group for a custom force in the λ-dependent group
    (their energy now differs between windows); the λ-dependent ones get the same factor.
Not scaled
    Bonds and angles (stiff, they carry no barrier that matters), constraints, and the long-range dispersion
    correction (fixed by OpenMM at context creation): intermediate windows only, the end states are exact.
Charged ligands
    Scaling a charged ligand's charges by √s leaves the box with a net charge in the tempered windows (PME's
    uniform background makes up for it there; on a charge-changing edge the co-ion no longer cancels it
    exactly). Only intermediate windows see this; the end states are exact.

The effective temperature rises geometrically from ``T0`` at both end windows to ``max_temperature`` at the
middle of the path (:func:`rest2_scales`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from mlfep_core import HybridError

__all__ = ["REST_PARAMETERS", "add_rest2", "region_of", "rest2_scales", "rest2_states"]

#: The two basic REST2 parameters (√s − 1 and s − 1); the per-λ products are named ``rest_q_<λ>``, ``rest_e_<λ>``.
REST_PARAMETERS = ("rest_q", "rest_e")

_TORSION_FACTOR = "(1 + rfull*rest_e + rpart*rest_q)"


def rest2_scales(n_windows: int, temperature_k: float, max_temperature_k: float) -> tuple[float, ...]:
    """``s = T0/T_eff`` per window: 1 at both ends, ``T0/max_temperature`` in the middle, ``T_eff`` geometric in
    the distance from the nearer end.

    Examples
    --------
    >>> [round(s, 3) for s in rest2_scales(5, 300.0, 600.0)]
    [1.0, 0.707, 0.5, 0.707, 1.0]
    """
    if max_temperature_k < temperature_k:
        raise HybridError(f"REST2 max_temperature {max_temperature_k:g} K is below the temperature {temperature_k:g} K")
    out = []
    for k in range(n_windows):
        t = k / (n_windows - 1) if n_windows > 1 else 0.0
        height = 1.0 - abs(2.0 * t - 1.0)  # 0 at the ends, 1 in the middle
        out.append(float((temperature_k / max_temperature_k) ** height))
    return tuple(out)


def rest2_states(windows: Sequence[Mapping[str, float]], scales: Sequence[float]) -> tuple[dict[str, float], ...]:
    """The λ windows with every REST2 global parameter of :func:`add_rest2` set for their scale ``s``."""
    if len(windows) != len(scales):
        raise HybridError(f"{len(windows)} λ windows but {len(scales)} REST2 scales")
    out = []
    for window, s in zip(windows, scales, strict=True):
        dq, de = math.sqrt(s) - 1.0, s - 1.0
        state = {k: float(v) for k, v in window.items()}
        state["rest_q"], state["rest_e"] = dq, de
        for name, value in window.items():
            state[f"rest_q_{name}"] = dq * float(value)
            state[f"rest_e_{name}"] = de * float(value)
        out.append(state)
    return tuple(out)


def add_rest2(system, region: Collection[int], lambda_parameters: Sequence[str], dynamic_group: int) -> dict[str, int]:
    """Make ``system`` (a hybrid from :func:`fep.alchemy.hybrid.build_hybrid`, changed in place) REST2-capable
    for the atoms in ``region``; returns how many terms of each kind were scaled.

    Every global parameter it adds defaults to the unscaled value: the system is unchanged until a state sets
    them (:func:`rest2_states`).
    """
    import openmm

    region = {int(i) for i in region}
    if not region:
        raise HybridError("REST2 needs a region of at least one atom")
    counts = {"particles": 0, "exceptions": 0, "softcore": 0, "torsions": 0}
    for force in list(system.getForces()):
        if isinstance(force, openmm.NonbondedForce):
            counts["particles"], counts["exceptions"] = _scale_nonbonded(force, region, lambda_parameters)
        elif isinstance(force, openmm.CustomNonbondedForce) and force.getName() == "hybrid_softcore":
            counts["softcore"] = _scale_softcore(force, region)
    counts["torsions"] = _scale_torsions(system, region, dynamic_group)
    return counts


def _scale_nonbonded(nb, region: set[int], lambda_parameters: Sequence[str]) -> tuple[int, int]:
    names = {nb.getGlobalParameterName(i) for i in range(nb.getNumGlobalParameters())}

    def param(name: str) -> str:
        if name not in names:
            nb.addGlobalParameter(name, 0.0)
            names.add(name)
        return name

    for name in REST_PARAMETERS:  # every parameter rest2_states sets exists, used or not
        param(name)
        for lam in lambda_parameters:
            param(f"{name}_{lam}")
    offsets: dict[int, list[tuple[str, float, float]]] = {}
    for n in range(nb.getNumParticleParameterOffsets()):
        name, i, dq, _ds, de = nb.getParticleParameterOffset(n)
        if i in region:
            offsets.setdefault(i, []).append((name, dq, de))
    for i in sorted(region):
        q0, _s0, e0 = (_plain(x) for x in nb.getParticleParameters(i))
        if q0:
            nb.addParticleParameterOffset("rest_q", i, q0, 0.0, 0.0)
        if e0:
            nb.addParticleParameterOffset("rest_e", i, 0.0, 0.0, e0)
        for name, dq, de in offsets.get(i, []):
            _check_lambda(name, lambda_parameters)
            if dq:
                nb.addParticleParameterOffset(param(f"rest_q_{name}"), i, dq, 0.0, 0.0)
            if de:
                nb.addParticleParameterOffset(param(f"rest_e_{name}"), i, 0.0, 0.0, de)
    exception_offsets: dict[int, list[tuple[str, float, float]]] = {}
    for n in range(nb.getNumExceptionParameterOffsets()):
        name, idx, dqq, _ds, de = nb.getExceptionParameterOffset(n)
        exception_offsets.setdefault(idx, []).append((name, dqq, de))
    n_exceptions = 0
    for idx in range(nb.getNumExceptions()):
        i, j, qq, _sig, eps = nb.getExceptionParameters(idx)
        inside = (i in region) + (j in region)
        if not inside:
            continue
        kind = "rest_e" if inside == 2 else "rest_q"  # s − 1 inside the region, √s − 1 across its edge
        qq, eps = _plain(qq), _plain(eps)
        changed = False
        if qq or eps:
            nb.addExceptionParameterOffset(kind, idx, qq, 0.0, eps)
            changed = True
        for name, dqq, de in exception_offsets.get(idx, []):
            _check_lambda(name, lambda_parameters)
            if dqq or de:
                nb.addExceptionParameterOffset(param(f"{kind}_{name}"), idx, dqq, 0.0, de)
                changed = True
        n_exceptions += changed
    return len(region), n_exceptions


def _check_lambda(name: str, lambda_parameters: Sequence[str]) -> None:
    if name not in lambda_parameters:
        raise HybridError(f"REST2: offset on '{name}', which is not a λ parameter of the hybrid")


def _plain(value) -> float:
    return float(value._value if hasattr(value, "_value") else value)


def _scale_softcore(force, region: set[int]) -> int:
    names = [force.getPerParticleParameterName(k) for k in range(force.getNumPerParticleParameters())]
    if "rin" in names:
        raise HybridError("the softcore force is REST2-scaled already")
    force.setEnergyFunction(_scaled("(1 + rin1*rest_q)*(1 + rin2*rest_q)", force.getEnergyFunction()))
    force.addPerParticleParameter("rin")
    force.addGlobalParameter("rest_q", 0.0)
    for i in range(force.getNumParticles()):
        force.setParticleParameters(i, [*force.getParticleParameters(i), 1.0 if i in region else 0.0])
    return sum(1 for i in region if i < force.getNumParticles())


def _scaled(factor: str, expression: str) -> str:
    """A custom force's energy expression ``E; a = ...; b = ...`` with its energy ``E`` multiplied by ``factor``
    (the definitions after the first ``;`` stay as they are)."""
    head, _, definitions = expression.partition(";")
    return f"rest_factor*({head})" + (f";{definitions}" if definitions else "") + f"; rest_factor = {factor}"


def _scale_torsions(system, region: set[int], dynamic_group: int) -> int:
    import openmm

    moved = openmm.CustomTorsionForce(f"{_TORSION_FACTOR}*k*(1 + cos(periodicity*theta - phase))")
    moved.setName("hybrid_torsions_rest2")
    for name in ("rfull", "rpart", "periodicity", "phase", "k"):
        moved.addPerTorsionParameter(name)
    for name in REST_PARAMETERS:
        moved.addGlobalParameter(name, 0.0)
    count = 0
    for force in list(system.getForces()):
        if isinstance(force, openmm.PeriodicTorsionForce):
            for n in range(force.getNumTorsions()):
                i, j, k, m, per, phase, kk = force.getTorsionParameters(n)
                inside = sum(a in region for a in (i, j, k, m))
                if not inside or _plain(kk) == 0.0:
                    continue
                moved.addTorsion(
                    i, j, k, m, [float(inside == 4), float(0 < inside < 4), per, _plain(phase), _plain(kk)]
                )
                force.setTorsionParameters(n, i, j, k, m, per, phase, 0.0)
                count += 1
        elif isinstance(force, openmm.CustomTorsionForce) and force.getName() == "hybrid_torsions_lambda":
            count += _scale_custom_torsions(force, region)
    if moved.getNumTorsions():
        moved.setForceGroup(dynamic_group)
        system.addForce(moved)
    return count


def _scale_custom_torsions(force, region: set[int]) -> int:
    names = [force.getPerTorsionParameterName(k) for k in range(force.getNumPerTorsionParameters())]
    if "rfull" in names:
        raise HybridError("the λ-dependent torsions are REST2-scaled already")
    force.setEnergyFunction(_scaled(_TORSION_FACTOR, force.getEnergyFunction()))
    force.addPerTorsionParameter("rfull")
    force.addPerTorsionParameter("rpart")
    for name in REST_PARAMETERS:
        force.addGlobalParameter(name, 0.0)
    count = 0
    for n in range(force.getNumTorsions()):
        i, j, k, m, params = force.getTorsionParameters(n)
        inside = sum(a in region for a in (i, j, k, m))
        force.setTorsionParameters(n, i, j, k, m, [*params, float(inside == 4), float(0 < inside < 4)])
        count += bool(inside)
    return count


def region_of(info) -> np.ndarray:
    """The REST2 region of a hybrid leg: every ligand atom (core, unique A, unique B), hybrid indices."""
    return np.array(sorted(set(info.atoms_a) | set(info.atoms_b)), dtype=int)
