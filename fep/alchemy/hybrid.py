"""The single-topology hybrid (alchemical) system of one leg of an edge A→B.

Hybrid particles are all particles of system A in A's order, then B's unique atoms appended. Mapped (core)
atoms interpolate their charges, Lennard-Jones and valence parameters; unique atoms are dummies at the other
end: the valence terms that place them (:mod:`fep.alchemy.junctions`, Fleck's rules) are kept at full strength at
both ends, the mixed terms that would couple them to the physical geometry are switched off at their dummy end,
and their nonbonded interactions vanish there. Unique A and unique B atoms never interact with each other.

λ parameters (all 0 at state A, all 1 at state B; see :mod:`fep.alchemy.lambdas`)::

    lambda_electrostatics_a     unique-A charges off (and their intramolecular exception charges)
    lambda_sterics_a            unique-A softcore LJ off
    lambda_sterics_b            unique-B softcore LJ on
    lambda_electrostatics_b     unique-B charges on
    lambda_electrostatics_core  core charges A -> B
    lambda_sterics_core         core σ/ε A -> B (and the long-range dispersion correction)
    lambda_bonded               changed core valence terms A -> B

Force groups (``HybridLegInfo.force_groups``): ``valence`` (λ-independent: environment, dummy and unchanged
core valence terms, CM motion remover, barostat), ``valence_lambda``, ``nonbonded`` (the NonbondedForce with
offsets: PME direct + reciprocal), ``softcore`` (unique atoms' LJ) and ``dispersion`` (λ part of the
long-range correction). Only ``valence`` is λ-independent; a sampler can evaluate it once per configuration.

Masses: A's for every particle of A (core atoms included), B's for B's unique atoms; masses do not change
configurational free energies. Constraints: A's, plus B's that involve a unique B atom; a core pair constrained
in only one end state, or at different lengths, keeps one length at every λ and is listed in ``info.warnings``.

Charge-changing edges (|Δq| = 1): in a periodic leg the end states carry an alchemical co-ion
(:func:`fep.systems.endstates.build_end_states`): a water far from the solute that is a water in A and Na+ or Cl-
in B. Its three particles are environment particles for every term but the nonbonded one, where their charges
and the oxygen's Lennard-Jones parameters move with the ligand's λ parameters so that the box is neutral at every
λ (:func:`fep.alchemy.nonbonded._add_coion_offsets`); PME then never sees a net charge. The vacuum leg needs none.

See :mod:`fep.alchemy.nonbonded` for the nonbonded design and what OpenMM recomputes on ``setParameter``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from fep.alchemy.nonbonded import LAMBDA_PARAMETERS, SOFTCORE_ALPHA, add_nonbonded_forces
from fep.alchemy.valence import ROLE_CORE, ROLE_ENV, ROLE_UNIQUE_A, ROLE_UNIQUE_B, add_valence_forces
from ligand_prep.models import AtomMapping, PreparedLigand
from mlfep_core import FrozenModel, HybridError, InputError, MappingError, atomic_write_text

__all__ = [
    "FORCE_GROUPS",
    "LAMBDA_PARAMETERS",
    "HybridError",
    "HybridLeg",
    "HybridLegInfo",
    "build_hybrid",
    "build_leg",
]

log = logging.getLogger(__name__)

FORCE_GROUPS: dict[str, int] = {"valence": 0, "valence_lambda": 1, "nonbonded": 2, "softcore": 3, "dispersion": 4}
LAMBDA_INDEPENDENT = ("valence",)
CONSTRAINT_TOLERANCE_NM = 1e-6


class HybridLegInfo(FrozenModel):
    """What a sampler needs to know about a hybrid leg, besides the OpenMM system itself."""

    leg: str = Field(description="'complex', 'solvent' or 'vacuum'.")
    ligand_a: str = Field(description="Name of ligand A.")
    ligand_b: str = Field(description="Name of ligand B.")
    n_atoms: int = Field(description="Number of hybrid particles (N_A + unique B atoms).")
    atoms_a: tuple[int, ...] = Field(description="Hybrid index of each atom of ligand A, in A's mol-block order.")
    atoms_b: tuple[int, ...] = Field(description="Hybrid index of each atom of ligand B, in B's mol-block order.")
    unique_a: tuple[int, ...] = Field(description="Hybrid indices of A's unique atoms (dummies at state B).")
    unique_b: tuple[int, ...] = Field(description="Hybrid indices of B's unique atoms (dummies at state A).")
    core: tuple[int, ...] = Field(description="Hybrid indices of mapped ligand atoms.")
    n_atoms_a: int = Field(description="Particles of plain system A (= the first N_A hybrid particles).")
    n_atoms_b: int = Field(description="Particles of plain system B.")
    b_to_hybrid: tuple[int, ...] = Field(description="Hybrid index of every particle of plain system B.")
    lambda_parameters: tuple[str, ...] = Field(description="Names of the λ global parameters (0 = A, 1 = B).")
    force_groups: dict[str, int] = Field(description="Force group of each component.")
    lambda_independent_groups: tuple[int, ...] = Field(description="Groups whose energy does not depend on λ.")
    periodic: bool = Field(description="Whether the system has periodic boundary conditions.")
    softcore_alpha: float = Field(SOFTCORE_ALPHA, description="Softcore α of the unique atoms' LJ.")
    n_lambda_valence_terms: dict[str, int] = Field(
        default_factory=dict, description="λ-dependent core valence terms per kind."
    )
    dispersion_coefficients: dict[str, float] = Field(
        default_factory=dict, description="Long-range dispersion coefficients C (E = C/V, kJ/mol·nm³) of A, B, hybrid."
    )
    warnings: tuple[str, ...] = Field((), description="Anything a user should know (e.g. constraint changes).")
    charge_change: int = Field(0, description="Net charge of B minus A (a charge-changing edge when not 0).")
    coion_atoms: tuple[int, ...] = Field(
        (), description="Hybrid indices (O, H, H) of the water that becomes the co-ion in B; empty without one."
    )
    coion: str | None = Field(None, description="'Na+' or 'Cl-': the co-ion in B of a charge-changing edge.")
    dummy_junctions: tuple[str, ...] = Field(
        (), description="Each dummy group's junction: bridge atom, frame, second anchors (fep.alchemy.junctions)."
    )
    switched_dummy_terms: dict[str, list[tuple[str, tuple[int, ...]]]] = Field(
        default_factory=dict,
        description="'A'/'B' -> (kind, hybrid atoms) of the mixed dummy terms switched off at their dummy end.",
    )


@dataclass(eq=False)
class HybridLeg:
    """A live hybrid system of one leg: OpenMM system, topology, positions and its :class:`HybridLegInfo`.

    Attributes
    ----------
    system : openmm.System
    topology : openmm.app.Topology
    positions : ndarray, shape (N, 3)
        Positions in nm.
    box_vectors : ndarray, shape (3, 3) or None
        Periodic box vectors in nm, ``None`` in vacuum.
    info : HybridLegInfo
    """

    system: Any
    topology: Any
    positions: np.ndarray
    box_vectors: np.ndarray | None
    info: HybridLegInfo

    def lambda_values(self, state: str | float) -> dict[str, float]:
        """Every λ parameter set to 0 (``"A"``), 1 (``"B"``) or a given value."""
        value = {"A": 0.0, "B": 1.0}.get(state, state) if isinstance(state, str) else float(state)
        if isinstance(value, str):
            raise InputError(f"state '{state}' is not 'A', 'B' or a number")
        return dict.fromkeys(self.info.lambda_parameters, float(value))

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``system.xml``, ``topology.pdb`` (with box), ``positions.npy`` and ``leg.json`` into ``folder``."""
        import io

        import openmm
        import openmm.app as app

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "system.xml", openmm.XmlSerializer.serialize(self.system))
        buffer = io.StringIO()
        app.PDBFile.writeFile(self.topology, self.positions * 10.0, buffer, keepIds=False)
        atomic_write_text(folder / "topology.pdb", buffer.getvalue())
        np_buffer = io.BytesIO()
        np.save(np_buffer, np.asarray(self.positions, dtype=np.float64))
        from mlfep_core import atomic_write_bytes

        atomic_write_bytes(folder / "positions.npy", np_buffer.getvalue())
        if self.box_vectors is not None:
            np_buffer = io.BytesIO()
            np.save(np_buffer, np.asarray(self.box_vectors, dtype=np.float64))
            atomic_write_bytes(folder / "box_vectors.npy", np_buffer.getvalue())
        self.info.to_json_file(folder / "leg.json")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> HybridLeg:
        """Read a leg written by :meth:`save`."""
        import openmm
        import openmm.app as app

        folder = Path(folder)
        for name in ("system.xml", "topology.pdb", "positions.npy", "leg.json"):
            if not (folder / name).exists():
                raise InputError(f"{folder}: missing {name}; not a hybrid leg folder written by HybridLeg.save")
        info = HybridLegInfo.from_json_file(folder / "leg.json")
        system = openmm.XmlSerializer.deserialize((folder / "system.xml").read_text())
        topology = app.PDBFile(str(folder / "topology.pdb")).topology
        positions = np.load(folder / "positions.npy")
        box = np.load(folder / "box_vectors.npy") if (folder / "box_vectors.npy").exists() else None
        if system.getNumParticles() != info.n_atoms or len(positions) != info.n_atoms:
            raise InputError(f"{folder}: system.xml, positions.npy and leg.json disagree on the number of atoms")
        return cls(system=system, topology=topology, positions=positions, box_vectors=box, info=info)


# --------------------------------------------------------------------------------------------- indexing
def _index_maps(end_states, mapping: AtomMapping):
    """Hybrid index bookkeeping: (a_to_h, b_to_h, h_to_a, h_to_b, role, unique_b_sys)."""
    n_a = end_states.system_a.getNumParticles()
    n_b = end_states.system_b.getNumParticles()
    lig_a = list(end_states.ligand_atoms_a)
    lig_b = list(end_states.ligand_atoms_b)
    env_a = list(end_states.environment_atoms_a)
    env_b = list(end_states.environment_atoms_b)
    edge = f"{mapping.ligand_a}~{mapping.ligand_b}"
    if len(env_a) != len(env_b):
        raise HybridError(f"edge {edge}: end states have {len(env_a)} and {len(env_b)} environment atoms")
    if len(lig_a) + len(env_a) != n_a or len(lig_b) + len(env_b) != n_b:
        raise HybridError(f"edge {edge}: ligand + environment atoms do not cover the end-state systems")
    for ia, ib in mapping.mapping.items():
        if not (0 <= ia < len(lig_a) and 0 <= ib < len(lig_b)):
            raise MappingError(f"edge {edge}: mapping pair {ia}->{ib} is outside the ligands' atom ranges")
    b_to_h = np.full(n_b, -1, dtype=int)
    for ia, ib in zip(env_a, env_b, strict=True):
        b_to_h[ib] = ia
    mapped_b = set(mapping.mapping.values())
    for ia, ib in mapping.mapping.items():
        b_to_h[lig_b[ib]] = lig_a[ia]
    unique_b_sys = [lig_b[j] for j in range(len(lig_b)) if j not in mapped_b]
    for k, ib in enumerate(unique_b_sys):
        b_to_h[ib] = n_a + k
    n = n_a + len(unique_b_sys)
    a_to_h = np.arange(n_a, dtype=int)
    h_to_a = np.full(n, -1, dtype=int)
    h_to_a[:n_a] = a_to_h
    h_to_b = np.full(n, -1, dtype=int)
    h_to_b[b_to_h] = np.arange(n_b)
    role = np.full(n, ROLE_ENV, dtype=int)
    mapped_a = set(mapping.mapping)
    for i, ia in enumerate(lig_a):
        role[ia] = ROLE_CORE if i in mapped_a else ROLE_UNIQUE_A
    role[n_a:] = ROLE_UNIQUE_B
    return a_to_h, b_to_h, h_to_a, h_to_b, role, unique_b_sys


def _hybrid_topology(end_states, unique_b_sys: list[int]):
    """A's topology with B's unique atoms as one extra residue at the end (indices = hybrid indices)."""
    import openmm.app as app

    top = app.Topology()
    atoms = []
    for chain in end_states.topology_a.chains():
        new_chain = top.addChain(chain.id)
        for residue in chain.residues():
            new_res = top.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
            for atom in residue.atoms():
                atoms.append(top.addAtom(atom.name, atom.element, new_res, atom.id))
    b_atoms = list(end_states.topology_b.atoms())
    if unique_b_sys:
        b_res = b_atoms[unique_b_sys[0]].residue
        chain = top.addChain("X")
        residue = top.addResidue(b_res.name, chain)
        for ib in unique_b_sys:
            atom = b_atoms[ib]
            atoms.append(top.addAtom(atom.name, atom.element, residue))
    for bond in end_states.topology_a.bonds():
        top.addBond(atoms[bond[0].index], atoms[bond[1].index])
    return top, atoms, b_atoms


def _add_b_bonds(top, atoms, end_states, b_to_h: np.ndarray, role: np.ndarray) -> None:
    for bond in end_states.topology_b.bonds():
        i, j = int(b_to_h[bond[0].index]), int(b_to_h[bond[1].index])
        if role[i] == ROLE_UNIQUE_B or role[j] == ROLE_UNIQUE_B:
            top.addBond(atoms[i], atoms[j])


def _constraints(hybrid, system_a, system_b, b_to_h: np.ndarray, role: np.ndarray, edge: str) -> list[str]:
    """A's constraints, plus B's that involve a unique B atom or a core pair A does not constrain."""
    warnings = []
    from openmm import _openmm

    get = _openmm.System_getConstraintParameters
    cons: dict[tuple[int, int], float] = {}
    for n in range(system_a.getNumConstraints()):
        i, j, d = get(system_a, n)
        cons[(min(i, j), max(i, j))] = d
    core_only_a = {key for key in cons if role[key[0]] == ROLE_CORE and role[key[1]] == ROLE_CORE}
    seen_b = set()
    b_list = b_to_h.tolist()
    for n in range(system_b.getNumConstraints()):
        i, j, d = get(system_b, n)
        hi, hj = b_list[i], b_list[j]
        key = (min(hi, hj), max(hi, hj))
        seen_b.add(key)
        if key in cons:
            if abs(cons[key] - d) > CONSTRAINT_TOLERANCE_NM:
                warnings.append(
                    f"edge {edge}: core constraint {key} has length {cons[key]:.5f} nm in A and {d:.5f} nm in B; "
                    "A's length is used at every λ"
                )
        else:
            cons[key] = d
            if role[hi] != ROLE_UNIQUE_B and role[hj] != ROLE_UNIQUE_B:
                warnings.append(
                    f"edge {edge}: core pair {key} is constrained only in B; B's length {d:.5f} nm is used at every λ"
                )
    for key in sorted(core_only_a - seen_b):
        warnings.append(
            f"edge {edge}: core pair {key} is constrained only in A; A's length {cons[key]:.5f} nm is used at every λ"
        )
    for (i, j), d in sorted(cons.items()):
        hybrid.addConstraint(i, j, d)
    return warnings


def _other_forces(hybrid, system_a, group: int) -> None:
    import copy

    import openmm

    handled = (
        openmm.HarmonicBondForce,
        openmm.HarmonicAngleForce,
        openmm.PeriodicTorsionForce,
        openmm.NonbondedForce,
    )
    for force in system_a.getForces():
        if isinstance(force, handled):
            continue
        if isinstance(force, openmm.CMMotionRemover | openmm.MonteCarloBarostat):
            new = copy.deepcopy(force)
            new.setForceGroup(group)
            hybrid.addForce(new)
            continue
        raise HybridError(
            f"system A contains a {type(force).__name__}, which the hybrid topology does not support; build the "
            "end states with mlfep's fep.systems.endstates"
        )


def _dummy_junctions(end_states, a_to_h: np.ndarray, b_to_h: np.ndarray, role: np.ndarray):
    """The mixed dummy terms of A's and of B's unique atoms to switch off at their dummy end, and the junctions
    (:mod:`fep.alchemy.junctions`)."""
    from fep.alchemy.junctions import switched_dummy_terms
    from fep.alchemy.valence import collect_terms

    out = []
    for label, system, topology, to_h, ligand, unique_role in (
        ("A", end_states.system_a, end_states.topology_a, a_to_h, end_states.ligand_atoms_a, ROLE_UNIQUE_A),
        ("B", end_states.system_b, end_states.topology_b, b_to_h, end_states.ligand_atoms_b, ROLE_UNIQUE_B),
    ):
        mine = set(int(i) for i in ligand)
        bonds, orders = [], {}
        for bond in topology.bonds():
            i, j = bond[0].index, bond[1].index
            if i in mine and j in mine:
                hi, hj = int(to_h[i]), int(to_h[j])
                bonds.append((hi, hj))
                orders[(min(hi, hj), max(hi, hj))] = int(bond.order or 1)
        heavy = np.zeros(len(role), dtype=bool)
        atoms = list(topology.atoms())
        for i in mine:
            heavy[int(to_h[i])] = atoms[i].element is not None and atoms[i].element.symbol != "H"
        unique = set(np.flatnonzero(role == unique_role).tolist())
        terms = {
            kind: [t for t in collect_terms(system, to_h, kind) if unique & set(t[0])]
            for kind in ("bond", "angle", "torsion")
        }
        switched, junctions = switched_dummy_terms(
            terms, unique, np.flatnonzero(role == ROLE_CORE).tolist(), bonds, heavy, orders
        )
        out.append((switched, [j.describe(label) for j in junctions]))
    (switched_a, described_a), (switched_b, described_b) = out
    return switched_a, switched_b, tuple(described_a + described_b)


# ------------------------------------------------------------------------------------------------ build
def build_hybrid(end_states, mapping: AtomMapping | None = None) -> HybridLeg:
    """Build the hybrid system of one leg from its two plain end states and the atom mapping.

    Parameters
    ----------
    end_states : fep.systems.endstates.EndStates
        Plain systems A and B sharing one environment (mapped B atoms on their A partners).
    mapping : AtomMapping, optional
        A mol-block index -> B mol-block index; defaults to ``end_states.mapping``.

    Returns
    -------
    HybridLeg

    Raises
    ------
    HybridError
        A periodic charge-changing edge without its co-ion, inconsistent end states, unsupported forces or
        virtual sites.
    fep.alchemy.nonbonded.HybridNonbondedError
        The end states differ in their nonbonded settings or net charge, or use LJPME.

    Examples
    --------
    ``leg = build_hybrid(build_end_states(prep_a, prep_b, mapping, "solvent"), mapping)``;
    ``context.setParameter(name, value)`` for ``name, value in leg.lambda_values(0.5).items()``.
    """
    import openmm

    mapping = mapping if mapping is not None else getattr(end_states, "mapping", None)
    if mapping is None:
        raise HybridError("build_hybrid needs an AtomMapping (none given and the end states carry none)")
    edge = mapping.key
    coion = tuple(int(i) for i in getattr(end_states, "coion_atoms", ()))
    if mapping.charge_change and end_states.box_vectors is not None and len(coion) != 3:
        raise HybridError(
            f"edge {edge}: the net charge changes by {mapping.charge_change:+d} and the end states have no co-ion; "
            "build them with fep.systems.endstates.build_end_states"
        )
    for label, name in (("A", getattr(end_states, "ligand_a", "")), ("B", getattr(end_states, "ligand_b", ""))):
        expected = mapping.ligand_a if label == "A" else mapping.ligand_b
        if name and name != expected:
            raise HybridError(
                f"edge {edge}: end states were built for ligand {label} '{name}', mapping says '{expected}'"
            )
    system_a, system_b = end_states.system_a, end_states.system_b
    for label, system in (("A", system_a), ("B", system_b)):
        if any(system.isVirtualSite(i) for i in range(system.getNumParticles())):
            raise HybridError(f"edge {edge}: system {label} has virtual sites, which the hybrid does not support")
    a_to_h, b_to_h, h_to_a, h_to_b, role, unique_b_sys = _index_maps(end_states, mapping)
    n_a = system_a.getNumParticles()
    n = n_a + len(unique_b_sys)

    hybrid = openmm.System()
    for i in range(n_a):
        hybrid.addParticle(system_a.getParticleMass(i))
    for ib in unique_b_sys:
        hybrid.addParticle(system_b.getParticleMass(ib))
    box = end_states.box_vectors
    if box is not None:
        hybrid.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*map(float, row)) for row in np.asarray(box)))
    else:
        hybrid.setDefaultPeriodicBoxVectors(*system_a.getDefaultPeriodicBoxVectors())

    warnings = _constraints(hybrid, system_a, system_b, b_to_h, role, edge)
    _other_forces(hybrid, system_a, FORCE_GROUPS["valence"])
    switched_a, switched_b, junctions = _dummy_junctions(end_states, a_to_h, b_to_h, role)
    counts = add_valence_forces(
        hybrid,
        system_a,
        system_b,
        a_to_h,
        b_to_h,
        role,
        FORCE_GROUPS["valence"],
        FORCE_GROUPS["valence_lambda"],
        switched_a=switched_a,
        switched_b=switched_b,
    )
    facts = add_nonbonded_forces(
        hybrid, system_a, system_b, a_to_h, b_to_h, h_to_a, h_to_b, role, FORCE_GROUPS, coion=coion
    )

    positions = np.zeros((n, 3))
    positions[:n_a] = np.asarray(end_states.positions_a, dtype=float)
    pos_b = np.asarray(end_states.positions_b, dtype=float)
    positions[n_a:] = pos_b[unique_b_sys] if unique_b_sys else positions[n_a:]
    core_h = np.flatnonzero(role == ROLE_CORE)
    offsets = np.abs(positions[b_to_h] - pos_b).max() if len(pos_b) else 0.0
    if offsets > 1e-4:
        warnings.append(f"edge {edge}: mapped B atoms are up to {offsets:.4f} nm away from their A partners")

    topology, atoms, _ = _hybrid_topology(end_states, unique_b_sys)
    _add_b_bonds(topology, atoms, end_states, b_to_h, role)
    if box is not None:
        import openmm.unit as unit

        topology.setPeriodicBoxVectors([openmm.Vec3(*map(float, row)) for row in np.asarray(box)] * unit.nanometer)

    lig_b = list(end_states.ligand_atoms_b)
    info = HybridLegInfo(
        leg=str(end_states.leg),
        ligand_a=mapping.ligand_a,
        ligand_b=mapping.ligand_b,
        n_atoms=n,
        atoms_a=tuple(int(i) for i in end_states.ligand_atoms_a),
        atoms_b=tuple(int(b_to_h[j]) for j in lig_b),
        unique_a=tuple(int(i) for i in np.flatnonzero(role == ROLE_UNIQUE_A)),
        unique_b=tuple(int(i) for i in np.flatnonzero(role == ROLE_UNIQUE_B)),
        core=tuple(int(i) for i in core_h),
        n_atoms_a=n_a,
        n_atoms_b=system_b.getNumParticles(),
        b_to_hybrid=tuple(int(i) for i in b_to_h),
        lambda_parameters=LAMBDA_PARAMETERS,
        force_groups=dict(FORCE_GROUPS),
        lambda_independent_groups=tuple(FORCE_GROUPS[k] for k in LAMBDA_INDEPENDENT),
        periodic=box is not None,
        n_lambda_valence_terms=counts,
        dispersion_coefficients={
            "a": facts.dispersion_coefficient_a,
            "b": facts.dispersion_coefficient_b,
            "hybrid_nonbonded": facts.dispersion_coefficient_nonbonded,
        },
        warnings=tuple(warnings) + tuple(mapping.warnings),
        charge_change=int(mapping.charge_change),
        coion_atoms=coion,
        coion=getattr(end_states, "coion", None),
        dummy_junctions=junctions,
        switched_dummy_terms={"A": sorted(switched_a), "B": sorted(switched_b)},
    )
    for message in warnings:
        log.warning(message)
    return HybridLeg(
        system=hybrid,
        topology=topology,
        positions=positions,
        box_vectors=None if box is None else np.asarray(box, dtype=float),
        info=info,
    )


def build_leg(
    prep_a: PreparedLigand,
    prep_b: PreparedLigand,
    mapping: AtomMapping,
    leg: str,
    settings=None,
    protein_pdb: str | os.PathLike[str] | None = None,
    progress=None,
) -> HybridLeg:
    """Plain end states (:func:`fep.systems.endstates.build_end_states`) and their hybrid, in one call."""
    from fep.systems.endstates import build_end_states

    end_states = build_end_states(prep_a, prep_b, mapping, leg, settings=settings, protein_pdb=protein_pdb)
    if progress:
        progress("building hybrid system")
    return build_hybrid(end_states, mapping)
