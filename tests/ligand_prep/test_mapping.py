"""Tests of ligand_prep.mapping: MCS atom mapping rules, 3D checks and the LOMAP-style score."""

from __future__ import annotations

import numpy as np
import pytest

from ligand_prep.mapping import MappingSettings, MCSMapper, lomap_score
from ligand_prep.models import Ligand
from mlfep_core import MappingError


def _ligand(mol, name: str) -> Ligand:
    from rdkit import Chem

    Chem.AssignStereochemistryFrom3D(mol)
    return Ligand(
        name=name,
        molblock=Chem.MolToMolBlock(mol),
        smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
        formal_charge=Chem.GetFormalCharge(mol),
    )


def posed(smiles: str, name: str, ref: Ligand | None = None) -> Ligand:
    """Embed ``smiles`` (seeded) and, given ``ref``, align its MCS with ``ref`` onto it (one shared frame)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdFMCS, rdMolAlign

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    if ref is not None:
        ref_mol = ref.to_rdkit()
        mcs = rdFMCS.FindMCS(
            [Chem.RemoveHs(ref_mol), Chem.RemoveHs(mol)],
            atomCompare=rdFMCS.AtomCompare.CompareAny,
            ringMatchesRingOnly=True,
            completeRingsOnly=True,
        )
        if mcs.numAtoms < 3:
            return _ligand(mol, name)
        query = Chem.MolFromSmarts(mcs.smartsString)
        ref_match = ref_mol.GetSubstructMatch(query)
        best = None
        for match in mol.GetSubstructMatches(query, uniquify=False):
            rmsd = rdMolAlign.AlignMol(mol, ref_mol, atomMap=list(zip(match, ref_match, strict=True)))
            if best is None or rmsd < best[0]:
                best = (rmsd, match)
        rdMolAlign.AlignMol(mol, ref_mol, atomMap=list(zip(best[1], ref_match, strict=True)))
    return _ligand(mol, name)


def _with_coords(ligand: Ligand, coords: np.ndarray, name: str) -> Ligand:
    from rdkit.Geometry import Point3D

    mol = ligand.to_rdkit()
    conf = mol.GetConformer()
    for i, xyz in enumerate(coords):
        conf.SetAtomPosition(i, Point3D(*map(float, xyz)))
    return _ligand(mol, name)


def _coords(ligand: Ligand) -> np.ndarray:
    return np.asarray(ligand.to_rdkit().GetConformer().GetPositions())


def _elements(ligand: Ligand) -> list[int]:
    return [a.GetAtomicNum() for a in ligand.to_rdkit().GetAtoms()]


def _check_rules(mapping, a: Ligand, b: Ligand, max_dist: float = 1.0) -> None:
    """Invariants every mapping must satisfy: distances, no H<->heavy, H only on same-element parents."""
    ea, eb = _elements(a), _elements(b)
    xa, xb = _coords(a), _coords(b)
    ma, mb = a.to_rdkit(), b.to_rdkit()
    for i, j in mapping.mapping.items():
        assert np.linalg.norm(xa[i] - xb[j]) < max_dist
        assert (ea[i] == 1) == (eb[j] == 1), f"H mapped to heavy atom: A{i} -> B{j}"
        if ea[i] == 1:
            pa = ma.GetAtomWithIdx(i).GetNeighbors()[0].GetIdx()
            pb = mb.GetAtomWithIdx(j).GetNeighbors()[0].GetIdx()
            assert mapping.mapping.get(pa) == pb
            assert ea[pa] == eb[pb]


def load_sdf(path) -> list[Ligand]:
    """Ligands straight from a benchmark SDF with RDKit (independent of ligand_prep.io)."""
    from rdkit import Chem

    out = []
    for mol in Chem.SDMolSupplier(str(path), removeHs=False):
        out.append(
            Ligand(
                name=mol.GetProp("_Name"),
                molblock=Chem.MolToMolBlock(mol),
                smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
                formal_charge=Chem.GetFormalCharge(mol),
            )
        )
    return out


@pytest.fixture(scope="module")
def tyk2_ligands(bench) -> list[Ligand]:
    return load_sdf(bench / "tyk2" / "ligands.sdf")


@pytest.fixture(scope="module")
def benzene() -> Ligand:
    return posed("c1ccccc1", "benzene")


def test_benzene_to_toluene_maps_ring_and_five_hydrogens(benzene):
    toluene = posed("Cc1ccccc1", "toluene", ref=benzene)
    m = MCSMapper().map(benzene, toluene)
    ea, eb = _elements(benzene), _elements(toluene)
    heavy = {i: j for i, j in m.mapping.items() if ea[i] > 1}
    hydrogens = {i: j for i, j in m.mapping.items() if ea[i] == 1}
    assert len(heavy) == 6 and all(eb[j] == 6 for j in heavy.values())
    assert len(hydrogens) == 5
    # the unique benzene H sits where toluene's methyl carbon is
    unique_h = next(i for i in range(12) if ea[i] == 1 and i not in m.mapping)
    methyl_c = next(a.GetIdx() for a in toluene.to_rdkit().GetAtoms() if a.GetAtomicNum() == 6 and not a.IsInRing())
    assert methyl_c not in m.mapping.values()
    assert np.linalg.norm(_coords(benzene)[unique_h] - _coords(toluene)[methyl_c]) < 0.6
    assert m.score == pytest.approx(np.exp(-0.1))
    assert m.charge_change == 0
    _check_rules(m, benzene, toluene)


def test_benzene_to_phenol(benzene):
    phenol = posed("Oc1ccccc1", "phenol", ref=benzene)
    m = MCSMapper().map(benzene, phenol)
    eb = _elements(phenol)
    assert sorted(eb[j] for j in m.mapping.values()) == [1] * 5 + [6] * 6
    assert 8 not in [eb[j] for j in m.mapping.values()]
    _check_rules(m, benzene, phenol)


def test_ring_size_change_is_not_partially_mapped():
    cyclohexane = posed("C1CCCCC1", "cyclohexane")
    cyclopentane = posed("C1CCCC1", "cyclopentane", ref=cyclohexane)
    with pytest.raises(MappingError, match="cyclohexane -> cyclopentane"):
        MCSMapper().map(cyclohexane, cyclopentane)

    a = posed("c1ccccc1C1CCCCC1", "phenylcyclohexane")
    b = posed("c1ccccc1C1CCCC1", "phenylcyclopentane", ref=a)
    m = MCSMapper().map(a, b)
    ma = a.to_rdkit()
    heavy = [i for i in m.mapping if ma.GetAtomWithIdx(i).GetAtomicNum() > 1]
    assert len(heavy) == 6
    assert all(ma.GetAtomWithIdx(i).GetIsAromatic() for i in heavy)
    _check_rules(m, a, b)
    # the resized ring counts as a ring change on each side: 12 + 11 heavy atoms, 6 mapped, 2 ring changes
    assert m.score == pytest.approx(lomap_score(12, 11, 6, n_ring_changes=2))
    assert any("2 ring(s) broken, formed or resized" in w for w in m.warnings)


def test_ring_formation_maps_the_shared_ring_only():
    a = posed("Cc1ccc2ccccc2c1", "methylnaphthalene")
    b = posed("Cc1ccccc1", "toluene", ref=a)
    m = MCSMapper().map(a, b)
    ea = _elements(a)
    heavy = [i for i in m.mapping if ea[i] > 1]
    assert len(heavy) == 7  # methyl + the substituted ring; the second naphthalene ring is dummy
    assert m.score == pytest.approx(lomap_score(11, 7, 7, n_ring_changes=1))
    _check_rules(m, a, b)


def test_element_change_allowed_with_penalty_and_switchable(benzene):
    pyridine = posed("c1ccncc1", "pyridine", ref=benzene)
    m = MCSMapper().map(benzene, pyridine)
    eb = _elements(pyridine)
    assert sum(1 for j in m.mapping.values() if eb[j] > 1) == 6
    assert 7 in [eb[j] for j in m.mapping.values()]
    assert 0 < m.score < 1.0
    assert any("element change" in w for w in m.warnings)
    _check_rules(m, benzene, pyridine)

    a = posed("CCCc1ccccc1", "propylbenzene")
    b = posed("CCCc1ccncc1", "propylpyridine", ref=a)
    strict = MCSMapper(MappingSettings(allow_element_change=False)).map(a, b)
    ea, eb = _elements(a), _elements(b)
    n_index = eb.index(7)
    assert n_index not in strict.mapping.values()
    assert all(ea[i] == eb[j] for i, j in strict.mapping.items())
    assert n_index in MCSMapper().map(a, b).mapping.values()


def test_inverted_stereocentre_is_not_mapped():
    a = posed("C[C@H](F)c1ccccc1", "R")
    xa = _coords(a)
    ring = [at.GetIdx() for at in a.to_rdkit().GetAtoms() if at.GetIsAromatic()]
    centre = xa[ring].mean(axis=0)
    normal = np.linalg.svd(xa[ring] - centre)[2][-1]
    mirrored = xa - 2.0 * np.outer((xa - centre) @ normal, normal)  # reflect through the ring plane
    b = _with_coords(a, mirrored, "S")
    assert a.smiles != b.smiles  # the two are enantiomers

    settings = MappingSettings(max_distance_angstrom=3.0, allow_element_change=False)
    m = MCSMapper(settings).map(a, b)
    stereo = next(
        at.GetIdx()
        for at in a.to_rdkit().GetAtoms()
        if at.GetAtomicNum() == 6 and at.GetDegree() == 4 and any(n.GetAtomicNum() == 9 for n in at.GetNeighbors())
    )
    assert stereo not in m.mapping
    ea = _elements(a)
    heavy = [i for i in m.mapping if ea[i] > 1]
    assert sorted(heavy) == sorted(ring)  # the methyl and F hang only on the centre: dropped with it
    assert any("tetrahedral centre" in w and "chirality" in w for w in m.warnings)


def test_pose_shifted_by_three_angstrom_cannot_be_mapped(benzene):
    toluene = posed("Cc1ccccc1", "toluene", ref=benzene)
    moved = _with_coords(toluene, _coords(toluene) + np.array([3.0, 0.0, 0.0]), "toluene_moved")
    mapper = MCSMapper()
    with pytest.raises(MappingError, match=r"benzene -> toluene_moved"):
        mapper.map(benzene, moved)
    with pytest.raises(MappingError, match=r"benzene -> toluene_moved"):  # the failure is cached, same message
        mapper.map(benzene, moved)


def test_identical_ligand_scores_one_and_maps_everything(tyk2_ligands):
    lig = tyk2_ligands[0]
    m = MCSMapper().map(lig, lig)
    assert m.score == 1.0
    assert m.mapping == {i: i for i in range(lig.n_atoms)}


def test_tyk2_pair_mapped_pairs_within_one_angstrom(tyk2_ligands):
    a, b = tyk2_ligands[0], tyk2_ligands[1]
    m = MCSMapper().map(a, b)
    assert m.ligand_a == a.name and m.ligand_b == b.name
    ea = _elements(a)
    assert sum(1 for i in m.mapping if ea[i] > 1) >= 15
    _check_rules(m, a, b)
    # the reverse direction is the inverse mapping
    back = MCSMapper().map(b, a)
    assert back.mapping == {j: i for i, j in m.mapping.items()}


def test_mapper_caches_pairs(tyk2_ligands):
    mapper = MCSMapper()
    first = mapper.map(tyk2_ligands[2], tyk2_ligands[3])
    assert mapper.map(tyk2_ligands[2], tyk2_ligands[3]) == first
    reverse = mapper.map(tyk2_ligands[3], tyk2_ligands[2])
    assert reverse.mapping == {j: i for i, j in first.mapping.items()}
    assert reverse.score == first.score


def test_lomap_score_formula():
    assert lomap_score(10, 10, 10) == 1.0
    assert lomap_score(10, 12, 10) == pytest.approx(np.exp(-0.2))
    assert lomap_score(10, 10, 10, n_element_changes=1, n_ring_changes=1) == pytest.approx(np.exp(-0.6))
    # nothing mapped: exp(-0.1 * 200) = 2.06e-9, tiny but positive and monotone in the unmapped atoms
    assert lomap_score(100, 100, 0) == pytest.approx(np.exp(-20.0), rel=1e-12)
    assert lomap_score(100, 100, 1) > lomap_score(100, 100, 0)


def test_an_edge_between_dissimilar_ligands_is_flagged():
    a = posed("c1ccccc1", "benzene")
    b = posed("C" * 24 + "c1ccccc1", "tetracosylbenzene", ref=a)
    m = MCSMapper().map(a, b)
    assert m.score == pytest.approx(lomap_score(6, 30, 6))  # exp(-2.4) = 0.091
    assert any("low similarity (score 0.091 < 0.1)" in w for w in m.warnings)
    assert not any("low similarity" in w for w in MCSMapper().map(a, posed("Cc1ccccc1", "toluene", ref=a)).warnings)


def test_settings_round_trip(tmp_path):
    settings = MappingSettings(max_distance_angstrom=0.8, allow_element_change=False)
    path = settings.to_json_file(tmp_path / "m.json")
    assert MappingSettings.from_json_file(path) == settings
