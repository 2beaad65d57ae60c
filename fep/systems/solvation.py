"""Solvent boxes for the end states: box vectors, water-clash clean-up, ion placement, fast topology copies.

Numpy in, numpy out (positions in nm, shape (N, 3)); ``openmm`` is imported inside the functions that need it.
Used by :mod:`fep.systems.endstates` (and :mod:`fep.systems.protein` for :func:`copy_topology`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ATOM_VOLUME_NM3",
    "WATER_MOLARITY",
    "WATER_PER_NM3",
    "box_vectors_for",
    "copy_topology",
    "ion_counts",
    "ion_sites",
    "merge_topologies",
    "npt_growth",
    "water_clashes",
]

WATER_MOLARITY = 55.4  # mol/L of pure water, the same number OpenMM's Modeller uses to count ion pairs
WATER_PER_NM3 = 33.4  # number density of liquid water at 298 K
ATOM_VOLUME_NM3 = 0.0170  # volume one solute atom excludes (fit to built tyk2 legs, see fep.execution.cost)
#: The smallest box height allowed once NPT has brought the water to its density, in cutoffs (OpenMM needs 2;
#: the height of a 6 nm³ water box fluctuates by ~0.7 %, measured, so 2.15 leaves ~10 σ).
MIN_EQUILIBRATED_HEIGHT = 2.15


def positions_nm(positions) -> np.ndarray:
    import openmm.unit as u

    values = positions.value_in_unit(u.nanometer) if u.is_quantity(positions) else positions
    return np.array([[v[0], v[1], v[2]] for v in values], dtype=float).reshape(-1, 3)


def vec3_nm(xyz: np.ndarray):
    """``openmm.unit`` positions (list of Vec3 in nm) from an array of shape (n, 3) in nm."""
    import openmm
    import openmm.unit as u

    return [openmm.Vec3(float(x), float(y), float(z)) for x, y, z in np.asarray(xyz).reshape(-1, 3)] * u.nanometer


def periodic_images(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``points`` and their 26 neighbouring periodic images, shape (27 * n, 3)."""
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float) @ box
    return (points[None, :, :] + shifts[:, None, :]).reshape(-1, 3)


def ion_counts(n_waters: int, net_charge: int, ionic_strength_molar: float, neutralize: bool = True) -> tuple[int, int]:
    """Numbers of (Na+, Cl-) for a box: OpenMM's rule (counter-ions, then pairs from the remaining waters).

    ``pairs = floor((n_waters - n_counter) * c / 55.4 M + 0.5)``, with ``n_waters`` counted before any
    water is replaced.
    """
    n_pos = max(0, -net_charge) if neutralize else 0
    n_neg = max(0, net_charge) if neutralize else 0
    pairs = math.floor((n_waters - n_pos - n_neg) * ionic_strength_molar / WATER_MOLARITY + 0.5)
    pairs = max(pairs, 0)
    return n_pos + pairs, n_neg + pairs


def water_clashes(oxygens: np.ndarray, box: np.ndarray, min_distance: float) -> set[int]:
    """Waters to drop so that no two water oxygens are closer than ``min_distance`` (nm, minimum image).

    ``Modeller.addSolvent`` tiles a pre-equilibrated box and trims it to the triclinic cell; waters meeting across
    the cell faces end up 0.17-0.24 nm apart (O–O) with forces up to 1.7e5 kJ/mol/nm. Measured on toluene in a
    4.0 nm dodecahedron (1442 waters): dropping the later water of each pair closer than 0.20 / 0.22 / 0.24 nm
    removes 11 / 37 / 67 waters and leaves 54 / 5 / 0 atoms with forces above 1e4 kJ/mol/nm (energy per water
    -26 / -31 / -33 kJ/mol, vs -16 without). The default 0.24 nm costs ~5 % of the waters of a small box; NPT
    equilibration restores the density.

    Parameters
    ----------
    oxygens : ndarray, shape (n_waters, 3)
    box : ndarray, shape (3, 3)
    min_distance : float

    Returns
    -------
    set of int
        Indices into ``oxygens``.
    """
    from scipy.spatial import cKDTree

    n = len(oxygens)
    removed: set[int] = set()
    if n < 2 or min_distance <= 0:
        return removed
    tree = cKDTree(periodic_images(oxygens, box))
    for i, neighbours in enumerate(tree.query_ball_point(oxygens, r=min_distance)):
        if i in removed:
            continue
        for j in sorted({k % n for k in neighbours} - {i} - removed):
            removed.add(max(i, j))
            if j < i:
                break
    return removed


def ion_sites(
    oxygens: np.ndarray, solute: np.ndarray, box: np.ndarray, n_ions: int, min_distance: float, seed: int
) -> list[int]:
    """Randomly chosen waters (seeded) to become ions: ``min_distance`` from the solute and from each other.

    Parameters
    ----------
    oxygens : ndarray, shape (n_waters, 3)
        Candidate water oxygens, nm.
    solute : ndarray, shape (n_solute, 3)
        Everything that is not a candidate water, nm.
    box : ndarray, shape (3, 3)
    n_ions : int
    min_distance : float
        nm.
    seed : int

    Returns
    -------
    list of int
        Indices into ``oxygens``, ``n_ions`` of them.
    """
    from scipy.spatial import cKDTree

    if n_ions == 0:
        return []
    far = np.ones(len(oxygens), dtype=bool)
    if len(solute):
        tree = cKDTree(periodic_images(solute, box))
        far = np.isinf(tree.query(oxygens, k=1, distance_upper_bound=min_distance)[0])
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    chosen_images = np.empty((0, 3))
    for w in rng.permutation(np.flatnonzero(far)):
        if len(chosen_images) and np.min(np.linalg.norm(chosen_images - oxygens[w], axis=1)) < min_distance:
            continue
        chosen.append(int(w))
        chosen_images = np.vstack([chosen_images, periodic_images(oxygens[w][None, :], box)])
        if len(chosen) == n_ions:
            break
    return chosen


def copy_topology(topology, positions: np.ndarray, skip_residues=frozenset(), ions=()):
    """A copy of ``topology`` without some residues, plus monatomic ions in a new last chain.

    Much faster than ``Modeller.delete``/``add`` (no deep copies of Vec3 positions) for 50k-atom boxes.

    Parameters
    ----------
    topology : openmm.app.Topology
    positions : ndarray, shape (N, 3)
        nm.
    skip_residues : set of int
        Residue indices to leave out.
    ions : sequence of (element symbol, ndarray shape (3,))
        e.g. ``[("Na", xyz), ("Cl", xyz)]``; residue and atom named like OpenMM's (``NA``, ``CL``).

    Returns
    -------
    topology : openmm.app.Topology
    positions : ndarray, shape (M, 3)
    old_index : list of int
        For each copied atom, its index in ``topology`` (ions excluded).
    """
    import openmm.app as app

    new = app.Topology()
    new.setPeriodicBoxVectors(topology.getPeriodicBoxVectors())
    new_atoms: dict[int, Any] = {}
    old_index: list[int] = []
    for chain in topology.chains():
        residues = [r for r in chain.residues() if r.index not in skip_residues]
        if not residues:
            continue
        new_chain = new.addChain(chain.id)
        for residue in residues:
            new_residue = new.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
            for atom in residue.atoms():
                new_atoms[atom.index] = new.addAtom(atom.name, atom.element, new_residue, atom.id, atom.formalCharge)
                old_index.append(atom.index)
    for bond in topology.bonds():
        a, b = new_atoms.get(bond[0].index), new_atoms.get(bond[1].index)
        if a is not None and b is not None:
            new.addBond(a, b, bond.type, bond.order)
    rows = [np.asarray(positions, dtype=float).reshape(-1, 3)[old_index]]
    if ions:
        chain = new.addChain()
        for symbol, xyz in ions:
            element = app.element.Element.getBySymbol(symbol)
            residue = new.addResidue(symbol.upper(), chain)
            new.addAtom(symbol.upper(), element, residue)
            rows.append(np.asarray(xyz, dtype=float).reshape(1, 3))
    return new, np.vstack(rows), old_index


def merge_topologies(parts):
    """One topology (and positions, shape (N, 3) nm) from ``[(topology, positions), ...]``, chains in order."""
    import openmm.app as app

    new = app.Topology()
    rows = []
    for topology, positions in parts:
        new_atoms: dict[int, Any] = {}
        for chain in topology.chains():
            new_chain = new.addChain(chain.id)
            for residue in chain.residues():
                new_residue = new.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
                for atom in residue.atoms():
                    new_atoms[atom.index] = new.addAtom(
                        atom.name, atom.element, new_residue, atom.id, atom.formalCharge
                    )
        for bond in topology.bonds():
            new.addBond(new_atoms[bond[0].index], new_atoms[bond[1].index], bond.type, bond.order)
        rows.append(np.asarray(positions, dtype=float).reshape(-1, 3))
    return new, (np.vstack(rows) if rows else np.empty((0, 3)))


_BOX_SHAPES = {
    # unit-width box vectors (OpenMM reduced form) of each shape; the width is the distance between images
    "cube": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    "dodecahedron": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5 * math.sqrt(2)]]),
    "octahedron": np.array(
        [[1.0, 0.0, 0.0], [1 / 3, 2 * math.sqrt(2) / 3, 0.0], [-1 / 3, math.sqrt(2) / 3, math.sqrt(6) / 3]]
    ),
}


def box_vectors_for(positions: np.ndarray, padding: float, shape: str, cutoff: float) -> np.ndarray:
    """Box vectors for a solute: OpenMM's ``addSolvent(padding=...)`` rule, never too small for the cutoff.

    The width (distance between periodic images) is ``max(2 r + padding, 2 padding)`` with ``r`` the solute's
    radius around its bounding-box centre, as in ``Modeller.addSolvent``; it is raised where needed so that
    every box height (``a_x``, ``b_y``, ``c_z``) is at least 2.2 × ``cutoff``: OpenMM requires 2 × and NPT volume
    fluctuations of a small box need the 10 % margin. (A small solute with 1.2 nm padding would get a 2.4 nm
    dodecahedron, whose height of 1.70 nm is too small for a 0.9 nm cutoff; it gets 2.80 nm instead.)

    Parameters
    ----------
    positions : ndarray, shape (n, 3)
        Solute positions, nm.
    padding, cutoff : float
        nm.
    shape : {"dodecahedron", "octahedron", "cube"}

    Returns
    -------
    ndarray, shape (3, 3)
        Box vectors in nm (rows a, b, c).
    """
    unit_box = _BOX_SHAPES[shape]
    radius = 0.0
    if len(positions):
        center = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
        radius = float(np.max(np.linalg.norm(positions - center, axis=1)))
    width = max(2 * radius + padding, 2 * padding, 2.2 * cutoff / float(np.min(np.diag(unit_box))))
    return unit_box * width


def npt_growth(box: np.ndarray, n_waters: int, n_solute_atoms: int, cutoff: float) -> float:
    """Factor (≥ 1) to scale a freshly solvated box by so that it stays tall enough for the cutoff under NPT.

    ``Modeller.addSolvent`` leaves the water of a triclinic box under-dense (gaps at the cell faces, and the waters
    :func:`water_clashes` removes there): ~11 % for the fast protocol's 2.18 nm dodecahedron. The barostat then
    shrinks the box to the density of water, by ~20 % in volume for that box, to 2.04 × the cutoff, where a
    fluctuation stops the run. The volume the box will have, ``n_waters / 33.4 nm⁻³ + 0.017 nm³ × n_solute``,
    gives its smallest height then; this returns how much larger the box must be for that height to be at least
    :data:`MIN_EQUILIBRATED_HEIGHT` × ``cutoff``. Measured on the fast protocol's benzene~toluene solvent box
    (0.7 nm cutoff, 80 ps NPT at 1 bar): without this rule 2.20 × cutoff at the start, 2.05-2.09 × after 10-80 ps;
    with it (3.5 % wider, 677 atoms instead of 599) 2.28 × at the start, 2.14-2.19 × after.

    Parameters
    ----------
    box : ndarray, shape (3, 3)
        Box vectors in nm (reduced form: rows a, b, c with a_x, b_y, c_z the heights).
    n_waters : int
        Waters (and ions, which replace waters) in the box.
    n_solute_atoms : int
        Atoms of the solute (protein, ligands).
    cutoff : float
        nm.
    """
    volume = abs(float(np.linalg.det(box)))
    expected = n_waters / WATER_PER_NM3 + ATOM_VOLUME_NM3 * n_solute_atoms
    height = float(np.min(np.diag(box))) * min(1.0, expected / volume) ** (1.0 / 3.0)
    need = MIN_EQUILIBRATED_HEIGHT * cutoff
    return 1.0 if height >= need else need / height
