"""Plain (non-alchemical) end states of one leg of an edge: ligand A and ligand B in the same environment.

One leg (``"complex"``, ``"solvent"`` or ``"vacuum"``) of an edge A~B gives two OpenMM systems that share
everything but the ligand: the same protein, the same waters and ions at the same positions, the same box.
The hybrid topology is built on top of this (:class:`EndStates` is its input).

How the environment is made
---------------------------
1. Ligand A keeps its pose. Ligand B is Kabsch-aligned onto A's mapped atoms, then every mapped B atom is put
   exactly on its A partner; B's unique atoms keep their aligned positions.
2. Protein (complex leg): read with ``openmm.app.PDBFile``, residue templates checked *before* any expensive
   work (:mod:`fep.systems.protein`: protonation variants, phosphorylated residues, metal ions). Crystal waters
   are kept (``keep_crystal_waters``), but one whose oxygen is within :data:`CRYSTAL_WATER_CLEARANCE_NM` of an
   atom of ligand A or B is removed (the ligand displaces it). Cofactors (:mod:`fep.systems.cofactors`) follow
   the protein, as given, checked for overlaps; they are environment atoms in every state.
3. Solvation happens once, with both ligands present as solute (``Modeller.addSolvent``, dodecahedron by
   default), so no water clashes with any atom of A or of B; waters that clash with each other across the
   cell faces are removed (:func:`fep.systems.solvation.water_clashes`). Ions are then placed
   (:func:`fep.systems.solvation.ion_sites`): neutralising counter-ions for the net charge of the leg (protein + ligand A) plus NaCl at the ionic
   strength, with OpenMM's counting rule, on randomly chosen waters (seeded, so reproducible) at least
   ``ion_min_distance`` from the solute and from each other. The box follows OpenMM's padding rule but is
   never smaller than the cutoff allows (:func:`fep.systems.solvation.box_vectors_for`): a small ligand with 1.2 nm padding gets a
   2.80 nm dodecahedron rather than 2.4 nm, whose height (1.70 nm) OpenMM would reject with a 0.9 nm cutoff.
4. System A is that box without ligand B, system B the box without ligand A; the environment atoms keep their
   order, so the k-th environment atom of A is the k-th of B. Atom order in each system: protein (and kept
   crystal waters and ions), cofactors (residue ``COF``), the ligand (residue ``LIG``, mol-block order), waters
   (``HOH``), ions (``NA``, ``CL``).
5. Each system is checked to carry exactly the prepared partial charges of its ligand and of each cofactor.

Nonbonded treatment: PME with ``nonbonded_cutoff`` (0.9 nm), Lennard-Jones switched over ``lj_switch_width``
(0.1 nm: 0.8 to 0.9 nm, Sage's switch; the hybrid copies it), the long-range dispersion correction ON (the
standard for homogeneous liquids; the hybrid topology must keep it λ-independent or recompute it, see
DESIGN.md), HBonds constraints, rigid TIP3P water, hydrogen mass repartitioning to ``hydrogen_mass``
(3 Da; water hydrogens are not repartitioned). The vacuum leg has no cutoff and no box.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fep.systems.forcefield import (
    LIGAND_RESIDUE_NAME,
    SystemSettings,
    create_ligand_system,
    ligand_topology,
    make_forcefield,
)
from fep.systems.solvation import (
    MIN_EQUILIBRATED_HEIGHT,
    box_vectors_for,
    copy_topology,
    ion_counts,
    ion_sites,
    merge_topologies,
    npt_growth,
    positions_nm,
    vec3_nm,
    water_clashes,
)
from ligand_prep.models import AtomMapping, PreparedLigand
from mlfep_core import (
    InputError,
    MappingError,
    MlfepError,
    ParametrizationError,
    UnsupportedEdgeError,
)
from mlfep_core.constants import LEGS
from mlfep_core.geometry import kabsch

__all__ = [
    "LEGS",
    "LIGAND_RESIDUE_NAME",
    "EndStates",
    "SystemSettings",
    "UnsupportedEdgeError",
    "align_ligand_b",
    "box_vectors_for",
    "build_end_states",
    "build_ligand_system",
    "make_forcefield",
]

log = logging.getLogger(__name__)

#: A crystal water whose oxygen is closer than this to any atom of either ligand is removed.
CRYSTAL_WATER_CLEARANCE_NM = 0.2
#: Largest net-charge change of an edge: one water becomes one monovalent co-ion.
MAX_CHARGE_CHANGE = 1
#: The co-ion of a charge change of the ligand by +1 (Cl-) or -1 (Na+): element, residue name, charge.
COIONS = {+1: ("Cl", "CL", -1), -1: ("Na", "NA", +1)}


@dataclass(eq=False)
class EndStates:
    """Plain (non-alchemical) end states of one leg; both systems share an identical environment.

    Attributes
    ----------
    leg : str
        ``"complex"``, ``"solvent"`` or ``"vacuum"``.
    system_a, system_b : openmm.System
        Ligand A (resp. B) in the environment.
    topology_a, topology_b : openmm.app.Topology
    positions_a : ndarray, shape (N_a, 3)
        Positions in nm.
    positions_b : ndarray, shape (N_b, 3)
        Positions in nm; mapped ligand atoms and the environment sit exactly where they are in A.
    box_vectors : ndarray, shape (3, 3) or None
        Periodic box vectors in nm (rows a, b, c; OpenMM reduced form), ``None`` for vacuum.
    ligand_atoms_a : list of int
        Particle index in system A of each atom of ligand A, in A's mol-block order.
    ligand_atoms_b : list of int
        The same for ligand B in system B.
    environment_atoms_a, environment_atoms_b : list of int
        Same length; the k-th environment particle of A is the k-th of B (same atom, parameters, position).
    ligand_a, ligand_b : str
        Ligand names.
    mapping : AtomMapping or None
        The atom mapping (A mol-block index -> B mol-block index) the poses were built with.
    settings : SystemSettings
        The settings used.
    net_charge : int
        Net charge of the leg before ions (protein + ligand A).
    n_waters, n_positive_ions, n_negative_ions : int
        Solvent content (identical in A and B).
    coion_atoms : tuple of int
        Charge-changing edge, periodic leg: the alchemical co-ion, a water far from the solute (O, H, H; the
        same particle indices in A and B, environment atoms). It is a water in A; in B its oxygen carries the
        ion's charge and Lennard-Jones parameters and its hydrogens are uncharged, so both end states are
        neutral (:data:`COIONS`). Empty otherwise.
    coion : str or None
        ``"Na+"`` or ``"Cl-"`` (the co-ion in B).
    """

    leg: str
    system_a: Any
    system_b: Any
    topology_a: Any
    topology_b: Any
    positions_a: np.ndarray
    positions_b: np.ndarray
    box_vectors: np.ndarray | None
    ligand_atoms_a: list[int]
    ligand_atoms_b: list[int]
    environment_atoms_a: list[int]
    environment_atoms_b: list[int]
    ligand_a: str = ""
    ligand_b: str = ""
    mapping: AtomMapping | None = None
    settings: SystemSettings = field(default_factory=SystemSettings)
    net_charge: int = 0
    n_waters: int = 0
    n_positive_ions: int = 0
    n_negative_ions: int = 0
    coion_atoms: tuple[int, ...] = ()
    coion: str | None = None

    @property
    def n_environment(self) -> int:
        """Number of environment particles (protein, waters, ions)."""
        return len(self.environment_atoms_a)

    def mapped_particles(self) -> dict[int, int]:
        """System-A particle index -> system-B particle index for every mapped ligand atom."""
        if self.mapping is None:
            return {}
        return {self.ligand_atoms_a[i]: self.ligand_atoms_b[j] for i, j in self.mapping.mapping.items()}


# ---------------------------------------------------------------------------------------------- checks
def _with_protein_templates(settings: SystemSettings, protein_pdb) -> SystemSettings:
    """``settings`` with the protein force-field files the PDB needs (phosphorylated residues)."""
    if protein_pdb is None:
        return settings
    from fep.systems.protein import protein_forcefield_files

    files = protein_forcefield_files(settings.protein_forcefield, protein_pdb)
    return (
        settings if files == settings.protein_forcefield else settings.model_copy(update={"protein_forcefield": files})
    )


def _check_leg(leg: str, protein_pdb: str | os.PathLike[str] | None) -> None:
    if leg not in LEGS:
        raise InputError(f"unknown leg '{leg}': choose one of {', '.join(LEGS)}")
    if leg == "complex" and protein_pdb is None:
        raise InputError("the complex leg needs a protein: give --protein PROTEIN.pdb")


def check_edge(prep_a: PreparedLigand, prep_b: PreparedLigand, mapping: AtomMapping) -> None:
    """Validate that ``mapping`` belongs to these two ligands and that the edge is supported.

    Raises
    ------
    MappingError
        Names or atom indices do not match the ligands.
    UnsupportedEdgeError
        The edge changes the net charge.
    """
    key = f"{prep_a.name}~{prep_b.name}"
    if (mapping.ligand_a, mapping.ligand_b) != (prep_a.name, prep_b.name):
        raise MappingError(
            f"edge {key}: the atom mapping is for {mapping.key}; pass the ligands in the mapping's order (A, B)"
        )
    n_a, n_b = prep_a.ligand.n_atoms, prep_b.ligand.n_atoms
    bad = [(i, j) for i, j in mapping.mapping.items() if not (0 <= i < n_a and 0 <= j < n_b)]
    if bad:
        raise MappingError(
            f"edge {key}: mapped pair {bad[0]} is outside the ligands' atoms (A has {n_a}, B has {n_b}); "
            "re-create the mapping from these ligands"
        )
    change = prep_b.ligand.formal_charge - prep_a.ligand.formal_charge
    if abs(change) > MAX_CHARGE_CHANGE:
        raise UnsupportedEdgeError(
            f"edge {key} changes the net charge by {change:+d} ({prep_a.name} {prep_a.ligand.formal_charge:+d}, "
            f"{prep_b.name} {prep_b.ligand.formal_charge:+d}): only changes of ±1 are supported (one alchemical "
            "co-ion); connect these ligands through an intermediate of charge in between, or check their "
            "protonation states"
        )


# ------------------------------------------------------------------------------------------------ poses
def ligand_positions(prep: PreparedLigand) -> np.ndarray:
    """The ligand's pose from its mol block.

    Returns
    -------
    ndarray, shape (n_atoms, 3)
        Positions in nm, mol-block order.
    """
    lines = prep.ligand.molblock.splitlines()
    n = prep.ligand.n_atoms
    xyz = [[float(line[0:10]), float(line[10:20]), float(line[20:30])] for line in lines[4 : 4 + n]]
    return np.asarray(xyz, dtype=float) * 0.1


def align_ligand_b(positions_a: np.ndarray, positions_b: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Place ligand B on ligand A: Kabsch fit of B's mapped atoms, then mapped atoms exactly on A's.

    Parameters
    ----------
    positions_a : ndarray, shape (n_a, 3)
    positions_b : ndarray, shape (n_b, 3)
        B's own pose (any frame).
    mapping : dict
        A atom index -> B atom index.

    Returns
    -------
    ndarray, shape (n_b, 3)
        B's new positions, same unit as the input.
    """
    placed = np.array(positions_b, dtype=float, copy=True)
    if not mapping:
        return placed
    idx_a = np.fromiter(mapping.keys(), dtype=int)
    idx_b = np.fromiter(mapping.values(), dtype=int)
    r, t = kabsch(placed[idx_b], positions_a[idx_a])
    placed = placed @ r.T + t
    placed[idx_b] = positions_a[idx_a]
    return placed


# -------------------------------------------------------------------------------------------- building
@dataclass
class _Box:
    """Everything of a leg with every ligand in it, before splitting into one system per ligand."""

    topology: Any  # environment + all ligands + all added waters (some of which are dropped or become ions)
    positions: np.ndarray  # (N, 3) nm
    ligand_residues: list[int]  # residue index of each ligand
    skip_residues: set[int] = field(default_factory=set)  # waters dropped (clashes) or replaced by ions
    ions: list[tuple[str, np.ndarray]] = field(default_factory=list)
    net_charge: int = 0
    n_waters: int = 0  # waters in the final box
    n_pos: int = 0
    n_neg: int = 0
    coion_residue: int | None = None  # the water that becomes the co-ion in B (charge-changing edges)


def _solvate(topology, positions, box_vectors, residues, net_charge, first_water, settings, forcefield, leg, ligands):
    """Water in ``box_vectors`` around the solute, waters that clash across the cell faces removed: the box, the
    kept water residues, their oxygen indices and the indices of the removed ones."""
    import openmm.app as app
    import openmm.unit as u

    modeller = app.Modeller(topology, vec3_nm(positions))
    try:
        modeller.addSolvent(
            forcefield,
            model=settings.water_model,
            boxVectors=vec3_nm(box_vectors),
            ionicStrength=0 * u.molar,
            neutralize=False,
        )
    except MlfepError:
        raise
    except Exception as err:
        names = ", ".join(p.name for p, _ in ligands)
        raise ParametrizationError(f"{leg} leg of {names}: solvation failed ({err})") from err
    box = _Box(
        topology=modeller.topology,
        positions=positions_nm(modeller.positions),
        ligand_residues=residues,
        net_charge=net_charge,
    )
    waters = [r for r in box.topology.residues() if r.index >= first_water and r.name == "HOH"]
    o_index = np.array([next(a.index for a in r.atoms() if a.element.symbol == "O") for r in waters], dtype=int)
    clashes = water_clashes(box.positions[o_index], box_vectors, settings.water_clash_distance.m_as("nanometer"))
    waters = [w for k, w in enumerate(waters) if k not in clashes]
    return box, waters, np.delete(o_index, sorted(clashes)), clashes


def _protein_part(protein_pdb, settings, forcefield, ligands, cofactors):
    """The checked protein (crystal waters displaced by either ligand removed) and the placed cofactors: the
    environment parts before the ligands, and their net charge."""
    from scipy.spatial import cKDTree

    from fep.systems.cofactors import COFACTOR_RESIDUE_NAME, check_cofactor_placement
    from fep.systems.protein import WATER_NAMES, load_protein

    if protein_pdb is None:
        raise InputError("the complex leg needs a protein PDB (--protein)")
    protein = load_protein(protein_pdb, settings, forcefield=forcefield)
    topology, positions = protein.topology, protein.positions
    ligand_xyz = np.vstack([pos for _, pos in ligands])
    tree = cKDTree(ligand_xyz)
    displaced = set()
    for residue in topology.residues():
        if residue.name in WATER_NAMES:
            oxygen = next((a.index for a in residue.atoms() if a.element is not None and a.element.symbol == "O"), None)
            if oxygen is not None and tree.query(positions[oxygen])[0] < CRYSTAL_WATER_CLEARANCE_NM:
                displaced.add(residue.index)
    if displaced:
        log.info(
            "protein %s: %d crystal water(s) within %.2f nm of %s removed (displaced by the ligand)",
            protein_pdb, len(displaced), CRYSTAL_WATER_CLEARANCE_NM, " or ".join(p.name for p, _ in ligands),
        )  # fmt: skip
        topology, positions, _ = copy_topology(topology, positions, skip_residues=displaced)
    parts = [(topology, positions)]
    charge = protein.net_charge
    if cofactors:
        heavy = [a.index for a in topology.atoms() if a.element is not None and a.element.symbol != "H"]
        check_cofactor_placement(
            [(p.ligand, x) for p, x in cofactors],
            [(p.ligand, x) for p, x in ligands],
            (positions[heavy], Path(protein_pdb).name),
        )
        for prep, pos in cofactors:
            parts.append((ligand_topology(prep, COFACTOR_RESIDUE_NAME), pos))
            charge += prep.ligand.formal_charge
    return parts, charge


def _assemble(
    ligands: Sequence[tuple[PreparedLigand, np.ndarray]],
    leg: str,
    settings: SystemSettings,
    forcefield,
    protein_pdb: str | os.PathLike[str] | None,
    progress=None,
    cofactors: Sequence[PreparedLigand] = (),
    coion_charge: int = 0,
) -> _Box:
    parts = []
    env_charge = 0
    if leg == "complex":
        placed = [(prep, ligand_positions(prep)) for prep in cofactors]
        parts, env_charge = _protein_part(protein_pdb, settings, forcefield, ligands, placed)
    n_env_residues = sum(t.getNumResidues() for t, _ in parts)
    n_env_parts = len(parts)
    parts += [(ligand_topology(prep), pos) for prep, pos in ligands]
    topology, positions = merge_topologies(parts)
    residues = [n_env_residues + k for k in range(len(ligands))]
    net_charge = env_charge + ligands[0][0].ligand.formal_charge
    if leg == "vacuum":
        return _Box(topology=topology, positions=positions, ligand_residues=residues, net_charge=net_charge)
    if progress:
        progress("solvating")
    first_water = topology.getNumResidues()
    box_vectors = box_vectors_for(
        positions,
        settings.padding_for(leg).m_as("nanometer"),
        settings.box_shape,
        settings.nonbonded_cutoff.m_as("nanometer"),
    )
    # solute of one end state (both ligands are in the box while it is solvated; each system keeps one)
    n_solute = sum(t.getNumAtoms() for t, _ in parts[:n_env_parts]) + max(p.ligand.n_atoms for p, _ in ligands)
    for attempt in range(3):  # a box NPT would shrink below the cutoff is solvated again, larger (npt_growth)
        box, waters, o_index, clashes = _solvate(
            topology, positions, box_vectors, residues, net_charge, first_water, settings, forcefield, leg, ligands
        )
        cutoff_nm = settings.nonbonded_cutoff.m_as("nanometer")
        grow = npt_growth(box_vectors, len(waters), n_solute, cutoff_nm)
        if grow <= 1.0 or attempt == 2:
            break
        log.info("%s leg: the solvated box would shrink below %.2f x the cutoff under NPT; %.3f x larger",
                 leg, MIN_EQUILIBRATED_HEIGHT, grow)  # fmt: skip
        box_vectors = box_vectors * grow
    n_pos, n_neg = ion_counts(len(waters), net_charge, settings.ionic_strength.m_as("molar"), settings.neutralize)
    water_atoms = np.zeros(len(box.positions), dtype=bool)
    water_atoms[[a.index for r in waters for a in r.atoms()]] = True
    cutoff = settings.ion_min_distance.m_as("nanometer")
    sites = ion_sites(
        box.positions[o_index], box.positions[~water_atoms], box_vectors, n_pos + n_neg, cutoff, settings.random_seed
    )
    if len(sites) < n_pos + n_neg:
        raise InputError(
            f"{leg} leg: cannot place {n_pos} Na+ and {n_neg} Cl- at least {cutoff} nm from the solute and from "
            f"each other ({len(sites)} places found): increase the padding or lower ion_min_distance"
        )
    box.ions = [("Na" if k < n_pos else "Cl", box.positions[o_index[w]]) for k, w in enumerate(sites)]
    site_set = set(sites)
    if coion_charge:
        free = [k for k in range(len(waters)) if k not in site_set]
        ions_xyz = np.array([xyz for _, xyz in box.ions]).reshape(-1, 3)
        k = farthest_water(box.positions[o_index[free]], box.positions[~water_atoms], ions_xyz, box_vectors, cutoff)
        box.coion_residue = waters[free[k]].index
    box.skip_residues = {r.index for k, r in enumerate(waters) if k in site_set}
    box.skip_residues |= {r.index for r in box.topology.residues() if r.index >= first_water} - {
        r.index for r in waters
    }
    box.n_waters, box.n_pos, box.n_neg = len(waters) - len(sites), n_pos, n_neg
    log.info(
        "%s leg: %d waters (%d removed for clashes), %d Na+, %d Cl-%s",
        leg,
        box.n_waters,
        len(clashes),
        n_pos,
        n_neg,
        f", one water becomes the co-ion {'Na+' if coion_charge > 0 else 'Cl-'} in B" if coion_charge else "",
    )
    return box


def _split(box: _Box, keep: int):
    """Topology, positions (nm, shape (N, 3)), ligand atom indices and co-ion atom indices (O first; empty without
    a co-ion) of the box with ligand ``keep`` only."""
    others = {r for k, r in enumerate(box.ligand_residues) if k != keep}
    topology, positions, old_index = copy_topology(
        box.topology, box.positions, skip_residues=box.skip_residues | others, ions=box.ions
    )
    residues = {r.index: r for r in box.topology.residues()}
    new_of_old = {old: new for new, old in enumerate(old_index)}
    ligand = [new_of_old[a.index] for a in residues[box.ligand_residues[keep]].atoms()]
    coion: list[int] = []
    if box.coion_residue is not None:
        atoms = sorted(residues[box.coion_residue].atoms(), key=lambda a: a.element.symbol != "O")
        coion = [new_of_old[a.index] for a in atoms]
    return topology, positions, ligand, coion


def build_end_states(
    prep_a: PreparedLigand,
    prep_b: PreparedLigand,
    mapping: AtomMapping,
    leg: str,
    settings: SystemSettings | None = None,
    protein_pdb: str | os.PathLike[str] | None = None,
    progress=None,
    cofactors: Sequence[PreparedLigand] = (),
) -> EndStates:
    """Build the two plain end states of one leg of the edge A~B in one shared environment.

    Parameters
    ----------
    prep_a, prep_b : PreparedLigand
        The ligands (poses, charges); charges are used as given.
    mapping : AtomMapping
        A -> B atom mapping (mol-block indices); its names must be A and B.
    leg : {"complex", "solvent", "vacuum"}
    settings : SystemSettings, optional
    protein_pdb : path, optional
        Required for the complex leg (prepared PDB with hydrogens).
    progress : callable, optional
        Called with a short message at each stage.
    cofactors : sequence of PreparedLigand
        Cofactors of the complex leg (:func:`fep.systems.cofactors.prepare_cofactors`), placed as given; ignored
        by the other legs.

    Returns
    -------
    EndStates

    Raises
    ------
    UnsupportedEdgeError
        The edge changes the net charge.
    MappingError, InputError, ParametrizationError
        Bad mapping, missing protein, a residue or ligand the force field cannot handle.
    """
    settings = settings or SystemSettings()
    _check_leg(leg, protein_pdb)
    check_edge(prep_a, prep_b, mapping)
    cofactors = tuple(cofactors) if leg == "complex" else ()
    pos_a = ligand_positions(prep_a)
    pos_b = align_ligand_b(pos_a, ligand_positions(prep_b), mapping.mapping)
    if progress:
        progress("parametrizing")
    settings = _with_protein_templates(settings, protein_pdb if leg == "complex" else None)
    forcefield = make_forcefield(settings, [prep_a, prep_b, *cofactors])
    change = prep_b.ligand.formal_charge - prep_a.ligand.formal_charge
    periodic = leg != "vacuum"
    coion_charge = COIONS[change][2] if change and periodic else 0
    box = _assemble(
        [(prep_a, pos_a), (prep_b, pos_b)], leg, settings, forcefield, protein_pdb, progress, cofactors, coion_charge
    )
    top_a, xyz_a, lig_a, coion_a = _split(box, 0)
    top_b, xyz_b, lig_b, coion_b = _split(box, 1)
    if progress:
        progress("creating systems")
    system_a = create_ligand_system(
        forcefield, top_a, settings, periodic, prep_a, lig_a, f"{leg} leg of ligand {prep_a.name}", cofactors
    )
    system_b = create_ligand_system(
        forcefield, top_b, settings, periodic, prep_b, lig_b, f"{leg} leg of ligand {prep_b.name}", cofactors
    )
    set_a, set_b = set(lig_a), set(lig_b)
    env_a = [i for i in range(top_a.getNumAtoms()) if i not in set_a]
    env_b = [i for i in range(top_b.getNumAtoms()) if i not in set_b]
    coion = None
    if coion_charge:
        coion = make_coion(system_b, coion_b, forcefield, change)
        log.info("%s leg of %s~%s: charge change %+d, water %s is the co-ion %s in B", leg, prep_a.name,
                 prep_b.name, change, coion_a, coion)  # fmt: skip
    box_vectors = positions_nm(top_a.getPeriodicBoxVectors()) if periodic else None
    return EndStates(
        leg=leg,
        system_a=system_a,
        system_b=system_b,
        topology_a=top_a,
        topology_b=top_b,
        positions_a=xyz_a,
        positions_b=xyz_b,
        box_vectors=box_vectors,
        ligand_atoms_a=lig_a,
        ligand_atoms_b=lig_b,
        environment_atoms_a=env_a,
        environment_atoms_b=env_b,
        ligand_a=prep_a.name,
        ligand_b=prep_b.name,
        mapping=mapping,
        settings=settings,
        net_charge=box.net_charge,
        n_waters=box.n_waters,
        n_positive_ions=box.n_pos,
        n_negative_ions=box.n_neg,
        coion_atoms=tuple(coion_a),
        coion=coion,
    )


def farthest_water(
    oxygens: np.ndarray, solute: np.ndarray, ions: np.ndarray, box_vectors: np.ndarray, min_ion_distance: float
) -> int:
    """Index of the water oxygen farthest from the solute (periodic images included) that is at least
    ``min_ion_distance`` nm from every ion: the co-ion of a charge-changing edge."""
    from scipy.spatial import cKDTree

    from fep.systems.solvation import periodic_images

    distance = cKDTree(periodic_images(solute, box_vectors)).query(oxygens, k=1)[0]
    if len(ions):
        near_ion = cKDTree(periodic_images(ions, box_vectors)).query(oxygens, k=1)[0] < min_ion_distance
        distance = np.where(near_ion, -np.inf, distance)
    return int(np.argmax(distance))


def _ion_parameters(forcefield, residue_name: str) -> tuple[float, float, float]:
    """Charge (e), σ (nm), ε (kJ/mol) the force field gives a lone ion (amber14/tip3p: Joung-Cheatham)."""
    import openmm
    import openmm.app as app

    topology = app.Topology()
    chain = topology.addChain()
    symbol = {"NA": "Na", "CL": "Cl"}[residue_name]
    topology.addAtom(residue_name, app.Element.getBySymbol(symbol), topology.addResidue(residue_name, chain))
    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff)
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    q, sigma, epsilon = force.getParticleParameters(0)
    return (float(q._value), float(sigma._value), float(epsilon._value))


def make_coion(system_b, atoms: Sequence[int], forcefield, change: int) -> str:
    """Turn the water ``atoms`` (O, H, H) of plain system B into the co-ion: the oxygen gets the ion's charge and
    Lennard-Jones parameters, the hydrogens lose their charge (their LJ is zero in TIP3P; they stay as massive,
    non-interacting particles held by the water's constraints, which add nothing to the configurational free
    energy). Returns ``"Na+"`` or ``"Cl-"``."""
    import openmm

    _, residue_name, charge = COIONS[change]
    q, sigma, epsilon = _ion_parameters(forcefield, residue_name)
    if round(q) != charge:  # pragma: no cover - a force field with other ion charges
        raise ParametrizationError(f"the force field gives {residue_name} a charge of {q:+.3f} e, not {charge:+d}")
    force = next(f for f in system_b.getForces() if isinstance(f, openmm.NonbondedForce))
    oxygen, *hydrogens = atoms
    force.setParticleParameters(oxygen, q, sigma, epsilon)
    for h in hydrogens:
        _, h_sigma, h_epsilon = force.getParticleParameters(h)
        if h_epsilon._value != 0.0:  # pragma: no cover - not TIP3P
            raise ParametrizationError("the co-ion needs a water model whose hydrogens carry no Lennard-Jones term")
        force.setParticleParameters(h, 0.0, h_sigma, 0.0)
    return "Na+" if charge > 0 else "Cl-"


def build_ligand_system(
    prep: PreparedLigand,
    leg: str,
    settings: SystemSettings | None = None,
    protein_pdb: str | os.PathLike[str] | None = None,
    cofactors: Sequence[PreparedLigand] = (),
):
    """One plain end state alone (e.g. for MD speed benchmarks).

    Returns
    -------
    system : openmm.System
    topology : openmm.app.Topology
    positions : ndarray, shape (N, 3)
        nm.
    box_vectors : ndarray, shape (3, 3) or None
        nm; ``None`` for vacuum.
    """
    settings = settings or SystemSettings()
    _check_leg(leg, protein_pdb)
    cofactors = tuple(cofactors) if leg == "complex" else ()
    settings = _with_protein_templates(settings, protein_pdb if leg == "complex" else None)
    forcefield = make_forcefield(settings, [prep, *cofactors])
    box = _assemble([(prep, ligand_positions(prep))], leg, settings, forcefield, protein_pdb, cofactors=cofactors)
    topology, positions, ligand_atoms, _ = _split(box, 0)
    periodic = leg != "vacuum"
    system = create_ligand_system(
        forcefield, topology, settings, periodic, prep, ligand_atoms, f"{leg} leg of ligand {prep.name}", cofactors
    )
    box_vectors = positions_nm(topology.getPeriodicBoxVectors()) if periodic else None
    return system, topology, positions, box_vectors
