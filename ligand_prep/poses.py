"""3D poses for ligands given as SMILES, placed on a reference ligand's pose by their common core.

:func:`generate_pose` finds the maximum common substructure (MCS) of heavy atoms, whole rings only, between
the new molecule and the reference; embeds several ETKDG conformers with the core atoms' coordinates as
constraints (for each symmetry-distinct placement of the core, e.g. a substituted phenyl matched both ways
round); aligns each on the core, copies the reference core coordinates onto it and relaxes it with a short
MMFF minimisation (core atoms held within 0.05 Å, other heavy atoms within 0.3 Å so the sampled torsions
stay); and keeps the conformer with the best score: core RMSD + a penalty for heavy atoms closer than
2.2 Å to protein heavy atoms (when a PDB is given) + a small strain term − a bonus for substituents that sit
on the reference's own substituents. While every pose clashes, more conformers are sampled.
:func:`embed_free` embeds a molecule without any reference (the first ligand of a series without
``--reference``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from ligand_prep.models import Ligand
from mlfep_core import InputError, PoseError

__all__ = ["CLASH_DISTANCE_ANGSTROM", "PoseError", "embed_free", "generate_pose", "protein_heavy_atoms"]

log = logging.getLogger(__name__)

#: Ligand-protein heavy-atom distance (Å) under which a contact counts as a clash.
CLASH_DISTANCE_ANGSTROM = 2.2
#: Smallest MCS (heavy atoms) accepted as a core to place a ligand on.
MIN_CORE_ATOMS = 3
#: rdFMCS timeout per ligand, seconds.
MCS_TIMEOUT_S = 2
#: Weight of the MMFF strain (kcal/mol above the best conformer) in the score, Å per kcal/mol.
STRAIN_WEIGHT = 0.005
#: Extra rounds of ``n_conformers`` conformers (new seeds) while every pose clashes with the protein.
CLASH_EXTRA_ROUNDS = 2
#: Symmetry-distinct placements of the core tried (e.g. a substituted phenyl matched both ways round).
MAX_CORE_PLACEMENTS = 4
#: A non-core heavy atom within this distance (Å) of a non-core reference heavy atom counts as overlaid.
OVERLAY_DISTANCE_ANGSTROM = 1.0
#: Score bonus (Å) per overlaid atom.
OVERLAY_WEIGHT = 0.2
_WATER = {"HOH", "WAT", "H2O", "TIP", "TIP3", "SOL", "DOD"}


# ------------------------------------------------------------------------------------------ protein
def protein_heavy_atoms(protein_pdb: str | os.PathLike[str]):
    """Coordinates of the protein's heavy atoms (waters excluded), shape (n_atoms, 3), in Å."""
    path = Path(protein_pdb)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: protein PDB file not found") from None
    return _protein_heavy_atoms(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _protein_heavy_atoms(path: str, _mtime_ns: int, _size: int):
    import numpy as np

    coords = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith(("ATOM", "HETATM")):
                continue
            if line[17:21].strip().upper() in _WATER:
                continue
            element = line[76:78].strip().upper() if len(line) >= 78 else ""
            if not element:
                element = "".join(ch for ch in line[12:16] if ch.isalpha())[:1].upper()
            if element in {"H", "D"}:
                continue
            try:
                coords.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
            except ValueError:
                raise InputError(f"{path}: unreadable coordinates in line '{line.rstrip()[:60]}'") from None
    if not coords:
        raise InputError(f"{path}: no protein atoms found (expected ATOM/HETATM records)")
    array = np.asarray(coords, dtype=float)
    array.flags.writeable = False  # shared through the cache
    return array


def _clash_penalty(positions, tree) -> float:
    """Penalty for ligand heavy atoms (positions, shape (n, 3)) closer than the clash distance to the protein."""
    if tree is None or len(positions) == 0:
        return 0.0
    dist, _ = tree.query(positions, k=1, distance_upper_bound=CLASH_DISTANCE_ANGSTROM)
    close = dist[dist < CLASH_DISTANCE_ANGSTROM]
    return float(len(close) * 0.5 + 2.0 * (CLASH_DISTANCE_ANGSTROM - close).sum())


# ------------------------------------------------------------------------------------------ helpers
def _heavy_view(mol):
    """(heavy-atom-only copy, list mapping its atom index -> index in ``mol``)."""
    from rdkit import Chem

    heavy_idx = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    heavy = Chem.RemoveAllHs(mol, sanitize=False)
    if heavy.GetNumAtoms() != len(heavy_idx):  # pragma: no cover - RemoveAllHs keeps heavy-atom order
        raise PoseError("internal error: hydrogen removal changed the heavy atom count")
    try:
        Chem.SanitizeMol(heavy)  # SSSR ring perception: whole-ring trimming needs the smallest rings
    except Exception:  # pragma: no cover - validated molecules sanitize
        heavy.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(heavy)
    return heavy, heavy_idx


def _mcs_pairs(mol_heavy, ref_heavy, complete_rings: bool, timeout: int) -> tuple[list[tuple[int, int]], bool]:
    """One rdFMCS search; (heavy-atom index pairs, timed out?)."""
    from rdkit import Chem
    from rdkit.Chem import rdFMCS

    result = rdFMCS.FindMCS(
        [mol_heavy, ref_heavy],
        atomCompare=rdFMCS.AtomCompare.CompareElements,
        bondCompare=rdFMCS.BondCompare.CompareOrder,
        ringMatchesRingOnly=True,
        completeRingsOnly=complete_rings,
        timeout=timeout,
    )
    if result.numAtoms == 0:
        return [], result.canceled
    query = Chem.MolFromSmarts(result.smartsString)
    mol_match = mol_heavy.GetSubstructMatch(query)
    ref_match = ref_heavy.GetSubstructMatch(query)
    if not mol_match or not ref_match:  # pragma: no cover - the MCS matches both by construction
        return [], result.canceled
    return list(zip(mol_match, ref_match, strict=True)), result.canceled


def _trim_to_complete_rings(pairs: list[tuple[int, int]], mol_heavy, ref_heavy) -> list[tuple[int, int]]:
    """Drop partially matched rings (in either molecule), keep the largest connected piece of the rest."""
    import networkx as nx

    pairs = list(pairs)
    mol_rings = [set(r) for r in mol_heavy.GetRingInfo().AtomRings()]
    ref_rings = [set(r) for r in ref_heavy.GetRingInfo().AtomRings()]
    changed = True
    while changed and pairs:
        changed = False
        in_mol = {i for i, _ in pairs}
        in_ref = {j for _, j in pairs}
        drop_mol: set[int] = set()
        drop_ref: set[int] = set()
        for ring in mol_rings:
            if ring & in_mol and not ring <= in_mol:
                drop_mol |= ring
        for ring in ref_rings:
            if ring & in_ref and not ring <= in_ref:
                drop_ref |= ring
        kept = [(i, j) for i, j in pairs if i not in drop_mol and j not in drop_ref]
        if len(kept) != len(pairs):
            pairs, changed = kept, True
    if not pairs:
        return []
    graph = nx.Graph()
    graph.add_nodes_from(i for i, _ in pairs)
    to_ref = dict(pairs)
    for a, b in ((x, y) for x in to_ref for y in to_ref if x < y):
        if mol_heavy.GetBondBetweenAtoms(a, b) is not None and ref_heavy.GetBondBetweenAtoms(to_ref[a], to_ref[b]):
            graph.add_edge(a, b)
    largest = max(nx.connected_components(graph), key=len)
    return [(i, j) for i, j in pairs if i in largest]


def _find_core(mol, ref, name: str, ref_name: str) -> list[tuple[int, int]]:
    """MCS core (heavy atoms, whole rings only) as (index in mol, index in ref) pairs.

    rdFMCS with ``completeRingsOnly`` can take very long on drug-sized pairs, so a fast search without it,
    trimmed to whole rings, runs first; the complete-rings search (with a timeout) runs too and the larger
    core wins.
    """
    mol_heavy, mol_idx = _heavy_view(mol)
    ref_heavy, ref_idx = _heavy_view(ref)
    fast, _ = _mcs_pairs(mol_heavy, ref_heavy, complete_rings=False, timeout=MCS_TIMEOUT_S)
    trimmed = _trim_to_complete_rings(fast, mol_heavy, ref_heavy)
    complete, canceled = _mcs_pairs(mol_heavy, ref_heavy, complete_rings=True, timeout=MCS_TIMEOUT_S)
    if canceled:
        log.info("%s: complete-rings MCS with %s timed out after %d s", name, ref_name, MCS_TIMEOUT_S)
    pairs = complete if len(complete) >= len(trimmed) else trimmed
    if len(pairs) < MIN_CORE_ATOMS:
        raise PoseError(
            f"ligand {name}: shares only {len(pairs)} heavy atoms (complete rings) with reference {ref_name}; "
            "choose a reference from the same series, or give this ligand a 3D pose in an SDF"
        )
    return [(mol_idx[i], ref_idx[j]) for i, j in pairs]


def _equivalent_cores(mol, ref, pairs: list[tuple[int, int]], limit: int) -> list[list[tuple[int, int]]]:
    """``pairs`` and up to ``limit - 1`` other placements of the same core on ``mol`` (symmetry-distinct).

    A phenyl ring in the core can be matched two ways round: the substituents outside the core then land on
    different sides. Placements that only swap symmetry-equivalent atoms of ``mol`` are dropped.
    """
    from rdkit import Chem

    mol_heavy, mol_idx = _heavy_view(mol)
    ref_heavy, ref_idx = _heavy_view(ref)
    mol_pos = {m: h for h, m in enumerate(mol_idx)}
    ref_pos = {m: h for h, m in enumerate(ref_idx)}
    heavy_pairs = [(mol_pos[i], ref_pos[j]) for i, j in pairs]
    ref_atoms = sorted(j for _, j in heavy_pairs)
    ref_set = set(ref_atoms)
    tagged = Chem.Mol(ref_heavy)
    for atom in tagged.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    bonds = [b.GetIdx() for b in tagged.GetBonds() if b.GetBeginAtomIdx() in ref_set and b.GetEndAtomIdx() in ref_set]
    query = Chem.MolFromSmarts(Chem.MolFragmentToSmarts(tagged, atomsToUse=ref_atoms, bondsToUse=bonds or None))
    if query is None:  # pragma: no cover - RDKit writes SMARTS it can read
        return [pairs]
    query_ref = [a.GetAtomMapNum() - 1 for a in query.GetAtoms()]
    ranks = list(Chem.CanonicalRankAtoms(mol_heavy, breakTies=False))
    seen = {frozenset((ranks[i], j) for i, j in heavy_pairs)}
    cores = [pairs]
    for match in mol_heavy.GetSubstructMatches(query, uniquify=False, useChirality=False, maxMatches=500):
        if len(cores) >= limit:
            break
        alt = list(zip(match, query_ref, strict=True))
        key = frozenset((ranks[i], j) for i, j in alt)
        if key in seen:
            continue
        seen.add(key)
        cores.append([(mol_idx[i], ref_idx[j]) for i, j in alt])
    return cores


def _canonical(mol) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def _pose_smiles(mol, conf_id: int) -> str:
    """Canonical isomeric SMILES with stereo perceived from conformer ``conf_id``."""
    from rdkit import Chem

    single = Chem.Mol(mol)
    conf = Chem.Conformer(mol.GetConformer(conf_id))
    single.RemoveAllConformers()
    new_id = single.AddConformer(conf, assignId=True)
    Chem.AssignStereochemistryFrom3D(single, confId=new_id)
    return _canonical(single)


def _minimize(
    mol, conf_id: int, restrained: list[int], loose: Sequence[int] = (), max_iters: int = 200
) -> float | None:
    """Short MMFF (UFF fallback) minimisation; returns the energy (kcal/mol, restraints included) or None.

    ``restrained`` atoms stay within 0.05 Å of their start positions (the core), ``loose`` atoms within 0.3 Å
    (flat-bottom): bond lengths and angles relax while the sampled torsions, hence the pose, are kept.
    """
    from rdkit.Chem import rdForceFieldHelpers

    props = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol)
    if props is not None:
        ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(
            mol, props, confId=conf_id, ignoreInterfragInteractions=False
        )
        add = ff.MMFFAddPositionConstraint
    elif rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        ff = rdForceFieldHelpers.UFFGetMoleculeForceField(mol, confId=conf_id)
        add = ff.UFFAddPositionConstraint
    else:
        return None
    for idx in restrained:
        add(idx, 0.05, 200.0)
    for idx in loose:
        add(idx, 0.3, 20.0)
    ff.Initialize()
    ff.Minimize(maxIts=max_iters)
    return float(ff.CalcEnergy())


def _positions(mol, conf_id: int, indices: list[int]):
    import numpy as np

    conf = mol.GetConformer(conf_id)
    return np.array([[p.x, p.y, p.z] for p in (conf.GetAtomPosition(i) for i in indices)], dtype=float).reshape(-1, 3)


def _sample(mol, ref, ref_pos, core, heavy, target, tree, n_conformers: int, seed: int):
    """Embed conformers on the core, align, copy the core, minimise, score.

    Returns
    -------
    list of (core_rmsd, clash_penalty, energy or None, overlay, core size, rdkit.Chem.Conformer)
        Only conformers whose perceived stereochemistry equals ``target``. ``overlay`` counts the heavy atoms
        outside the core that sit on a heavy atom of the reference outside the core (within
        :data:`OVERLAY_DISTANCE_ANGSTROM`): a Cl replaced by F should take the Cl's place.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom, rdMolAlign
    from rdkit.Geometry import Point3D
    from scipy.spatial import cKDTree

    core_mol = [i for i, _ in core]
    core_set = set(core_mol)
    loose = [i for i in heavy if i not in core_set]
    core_ref_pos = ref_pos[[j for _, j in core]]
    coord_map = {i: Point3D(*ref_pos[j]) for i, j in core}
    core_ref = {j for _, j in core}
    rest = [a.GetIdx() for a in ref.GetAtoms() if a.GetAtomicNum() > 1 and a.GetIdx() not in core_ref]
    ref_rest = cKDTree(ref_pos[rest]) if rest else None
    cids = list(
        rdDistGeom.EmbedMultipleConfs(
            mol,
            numConfs=max(1, n_conformers),
            randomSeed=seed,
            coordMap=coord_map,
            useRandomCoords=True,
            enforceChirality=True,
            maxAttempts=50,
        )
    )
    if not cids:
        log.info("constrained embedding failed; embedding freely and aligning on the core")
        cids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=max(1, n_conformers), randomSeed=seed))
    candidates = []
    for cid in cids:
        rdMolAlign.AlignMol(mol, ref, prbCid=cid, atomMap=list(core))
        conf = mol.GetConformer(cid)
        for i, j in core:
            conf.SetAtomPosition(i, Point3D(*ref_pos[j]))
        energy = _minimize(mol, cid, core_mol, loose=loose)
        if _pose_smiles(mol, cid) != target:
            continue
        diff = _positions(mol, cid, core_mol) - core_ref_pos
        rmsd = float((diff**2).sum(axis=1).mean() ** 0.5)
        clash = _clash_penalty(_positions(mol, cid, heavy), tree)
        overlay = 0
        if ref_rest is not None and loose:
            overlay = int((ref_rest.query(_positions(mol, cid, loose), k=1)[0] < OVERLAY_DISTANCE_ANGSTROM).sum())
        candidates.append((rmsd, clash, energy, overlay, len(core), Chem.Conformer(conf)))
    return candidates


# ------------------------------------------------------------------------------------------ public
def embed_free(mol_without_pose, n_conformers: int = 10, seed: int = 42, name: str = "ligand") -> str:
    """Embed a molecule with no reference (ETKDG + MMFF), keep the lowest-energy conformer.

    Returns
    -------
    str
        MDL mol block with explicit hydrogens and 3D coordinates.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    mol = Chem.AddHs(Chem.Mol(mol_without_pose))
    mol.RemoveAllConformers()
    target = _canonical(mol)
    cids = list(rdDistGeom.EmbedMultipleConfs(mol, numConfs=max(1, n_conformers), randomSeed=seed))
    if not cids:
        cids = list(
            rdDistGeom.EmbedMultipleConfs(mol, numConfs=max(1, n_conformers), randomSeed=seed, useRandomCoords=True)
        )
    if not cids:
        raise PoseError(f"ligand {name}: RDKit could not embed a 3D conformer; check the SMILES or give a 3D SDF")
    scored = []
    for cid in cids:
        energy = _minimize(mol, cid, [], max_iters=500)
        if _pose_smiles(mol, cid) != target:
            continue
        scored.append((energy if energy is not None else 0.0, cid))
    if not scored:
        raise PoseError(f"ligand {name}: every embedded conformer lost the SMILES stereochemistry; check the SMILES")
    best = min(scored)[1]
    out = Chem.Mol(mol)
    conf = Chem.Conformer(mol.GetConformer(best))
    out.RemoveAllConformers()
    out.AddConformer(conf, assignId=True)
    out.SetProp("_Name", name)
    return Chem.MolToMolBlock(out)


def generate_pose(
    mol_without_pose, reference: Ligand, protein_pdb=None, n_conformers: int = 10, seed: int = 42
) -> tuple[str, float]:
    """Place a molecule on ``reference``'s pose by their maximum common substructure.

    Parameters
    ----------
    mol_without_pose : rdkit.Chem.Mol
        The molecule (stereo defined; hydrogens implicit or explicit; conformers are ignored). Its ``_Name``
        property, if set, names it in messages.
    reference : Ligand
        The ligand whose 3D pose the common core copies.
    protein_pdb : path, optional
        Protein PDB; conformers whose heavy atoms come closer than :data:`CLASH_DISTANCE_ANGSTROM` to protein
        heavy atoms are penalised.
    n_conformers : int
        Conformers embedded (different random seeds) before the best is kept.
    seed : int
        Random seed (results are reproducible for a given seed).

    Returns
    -------
    molblock : str
        The pose: MDL mol block, explicit hydrogens, 3D coordinates in the reference's frame (Å).
    core_rmsd : float
        RMSD (Å) of the MCS core heavy atoms to the matching reference atoms, in place (no re-fit).

    Raises
    ------
    PoseError
        Core too small, embedding failed or stereochemistry could not be kept.
    """
    from rdkit import Chem

    name = mol_without_pose.GetProp("_Name") if mol_without_pose.HasProp("_Name") else "ligand"
    name = name.strip() or "ligand"
    mol = Chem.AddHs(Chem.Mol(mol_without_pose))
    mol.RemoveAllConformers()
    target = _canonical(mol)
    ref = reference.to_rdkit()
    ref_pos = ref.GetConformer().GetPositions()

    tree = None
    if protein_pdb is not None:
        from scipy.spatial import cKDTree

        tree = cKDTree(protein_heavy_atoms(protein_pdb))

    pairs = _find_core(mol, ref, name, reference.name)
    chiral = {a.GetIdx() for a in mol.GetAtoms() if a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED}
    # other placements of the core only matter where something can tell them apart: the protein, or reference
    # atoms outside the core for the substituents to overlay
    ref_heavy_count = sum(1 for a in ref.GetAtoms() if a.GetAtomicNum() > 1)
    placements = MAX_CORE_PLACEMENTS if tree is not None or ref_heavy_count > len(pairs) else 1
    attempts = [_equivalent_cores(mol, ref, pairs, placements) if placements > 1 else [pairs]]
    reduced = [(i, j) for i, j in pairs if i not in chiral]
    if len(reduced) != len(pairs) and len(reduced) >= MIN_CORE_ATOMS:
        attempts.append([reduced])  # a core stereocentre of opposite handedness cannot copy the reference's

    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    for cores in attempts:
        candidates: list[tuple[float, float, float | None, int, int, object]] = []
        for round_index in range(1 + (CLASH_EXTRA_ROUNDS if tree is not None else 0)):
            for core in cores:
                candidates += _sample(
                    mol, ref, ref_pos, core, heavy, target, tree, n_conformers, seed + 7919 * round_index
                )
            if not candidates or min(c[1] for c in candidates) == 0.0:
                break
            log.info("%s: every pose so far clashes with the protein; sampling more conformers", name)
        if not candidates:
            log.info("%s: no conformer kept the stereochemistry with a %d-atom core", name, len(cores[0]))
            continue
        energies = [c[2] for c in candidates if c[2] is not None]
        e_min = min(energies) if energies else 0.0
        scored = sorted(
            (
                rmsd
                + clash
                + STRAIN_WEIGHT * ((energy if energy is not None else e_min) - e_min)
                - OVERLAY_WEIGHT * overlay,
                index,
            )
            for index, (rmsd, clash, energy, overlay, _size, _conf) in enumerate(candidates)
        )
        rmsd, clash, _energy, _overlay, size, best_conf = candidates[scored[0][1]]
        if clash > 0:
            log.warning("%s: best pose still clashes with the protein (penalty %.2f)", name, clash)
        out = Chem.Mol(mol)
        out.RemoveAllConformers()
        out.AddConformer(best_conf, assignId=True)  # type: ignore[arg-type]  # an RDKit Conformer
        out.SetProp("_Name", name)
        log.info("%s: pose on %s, core %d atoms, core RMSD %.3f Å", name, reference.name, size, rmsd)
        return Chem.MolToMolBlock(out), rmsd
    raise PoseError(
        f"ligand {name}: no conformer could be placed on reference {reference.name} with its stereochemistry kept; "
        "check the stereo in the SMILES, choose another reference, or give a 3D pose in an SDF"
    )
