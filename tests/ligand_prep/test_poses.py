"""Pose generation on a reference core: geometry, stereo, reproducibility, clashes, failures."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.spatial import cKDTree

from ligand_prep.io import read_ligands
from ligand_prep.models import Ligand
from ligand_prep.poses import CLASH_DISTANCE_ANGSTROM, PoseError, embed_free, generate_pose, protein_heavy_atoms


def _ligand(smiles: str, name: str) -> Ligand:
    mol = Chem.MolFromSmiles(smiles)
    block = embed_free(mol, name=name)
    posed = Chem.MolFromMolBlock(block, removeHs=False)
    return Ligand(name=name, molblock=block, smiles=Chem.MolToSmiles(mol), formal_charge=Chem.GetFormalCharge(posed))


def _named(smiles: str, name: str):
    mol = Chem.MolFromSmiles(smiles)
    mol.SetProp("_Name", name)
    return mol


def test_embed_free_is_3d_with_hydrogens():
    block = embed_free(Chem.MolFromSmiles("CCO"), name="ethanol")
    mol = Chem.MolFromMolBlock(block, removeHs=False)
    assert mol.GetNumAtoms() == 9
    assert np.ptp(mol.GetConformer().GetPositions()[:, 2]) > 0.1
    # MMFF-minimised: C-C bond near 1.51 Å
    assert np.linalg.norm(mol.GetConformer().GetPositions()[0] - mol.GetConformer().GetPositions()[1]) == (
        pytest.approx(1.51, abs=0.03)
    )


def test_toluene_on_benzene_core():
    benzene = _ligand("c1ccccc1", "benzene")
    block, rmsd = generate_pose(_named("Cc1ccccc1", "toluene"), benzene)
    mol = Chem.MolFromMolBlock(block, removeHs=False)
    assert mol.GetNumAtoms() == 15
    assert mol.GetProp("_Name") == "toluene"
    assert rmsd < 0.1
    ref_ring = benzene.to_rdkit().GetConformer().GetPositions()[:6]
    ring = mol.GetConformer().GetPositions()[[a.GetIdx() for a in mol.GetAtoms() if a.GetIsAromatic()]]
    assert np.linalg.norm(ring[:, None] - ref_ring[None], axis=-1).min(axis=1).max() < 0.1
    # bonded geometry is sensible after the restrained minimisation
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        length = np.linalg.norm(mol.GetConformer().GetPositions()[i] - mol.GetConformer().GetPositions()[j])
        assert 0.95 < length < 1.6


def test_same_seed_same_pose():
    benzene = _ligand("c1ccccc1", "benzene")
    first = generate_pose(_named("CCc1ccccc1", "ethylbenzene"), benzene, seed=3)
    second = generate_pose(_named("CCc1ccccc1", "ethylbenzene"), benzene, seed=3)
    assert first == second


@pytest.mark.parametrize("smiles", ["C[C@H](N)c1ccccc1", "C[C@@H](N)c1ccccc1", "C[C@@H](O)c1ccccc1"])
def test_stereo_kept_for_both_enantiomers(smiles):
    """Including the reference's own enantiomer, whose core stereocentre cannot copy the reference's."""
    reference = _ligand("C[C@H](O)c1ccccc1", "phenylethanol")
    block, rmsd = generate_pose(_named(smiles, "amine"), reference)
    mol = Chem.MolFromMolBlock(block, removeHs=False)
    Chem.AssignStereochemistryFrom3D(mol)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    assert rmsd < 0.5


def test_no_common_core_is_an_error():
    benzene = _ligand("c1ccccc1", "benzene")
    with pytest.raises(PoseError, match=r"ligand ethane: shares only 0 heavy atoms .* reference benzene"):
        generate_pose(_named("CC", "ethane"), benzene)


def test_protein_heavy_atoms_skip_water_and_hydrogen(bench):
    path = bench / "tyk2" / "protein.pdb"
    coords = protein_heavy_atoms(path)
    expected = 0
    for line in path.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")) and line[17:20] != "HOH" and line[76:78].strip() != "H":
            expected += 1
    assert coords.shape == (expected, 3)
    assert expected > 2000


def test_protein_clashes_are_avoided(bench):
    """jmc_27's chlorocyclopropyl group is not in the core: with the protein its rotamer avoids the pocket wall."""
    docked = {lig.name: lig for lig in read_ligands(bench / "tyk2" / "ligands.sdf")}
    protein = bench / "tyk2" / "protein.pdb"
    tree = cKDTree(protein_heavy_atoms(protein))
    mol = _named(docked["lig_jmc_27"].smiles, "lig_jmc_27")
    block, rmsd = generate_pose(mol, docked["lig_ejm_31"], protein_pdb=protein)
    posed = Chem.MolFromMolBlock(block, removeHs=False)
    heavy = [a.GetIdx() for a in posed.GetAtoms() if a.GetAtomicNum() > 1]
    assert tree.query(posed.GetConformer().GetPositions()[heavy])[0].min() > CLASH_DISTANCE_ANGSTROM
    assert rmsd < 0.5


def test_existing_conformers_are_ignored():
    benzene = _ligand("c1ccccc1", "benzene")
    mol = Chem.AddHs(_named("Oc1ccccc1", "phenol"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    block, rmsd = generate_pose(mol, benzene)
    assert Chem.MolFromMolBlock(block, removeHs=False).GetNumConformers() == 1
    assert rmsd < 0.1


@pytest.mark.parametrize("smiles", ["Cc1ccccc1F", "Fc1ccccc1C", "c1cc(F)c(C)cc1"])
def test_substituent_takes_the_place_of_the_reference_one(smiles):
    """F of 2-fluorotoluene goes where the Cl of the 2-chlorotoluene reference is, whichever way the ring matches."""
    reference = _ligand("Cc1ccccc1Cl", "chlorotoluene")
    ref_mol = reference.to_rdkit()
    chlorine = ref_mol.GetConformer().GetPositions()[
        next(a.GetIdx() for a in ref_mol.GetAtoms() if a.GetSymbol() == "Cl")
    ]
    block, rmsd = generate_pose(_named(smiles, "fluorotoluene"), reference)
    mol = Chem.MolFromMolBlock(block, removeHs=False)
    fluorine = mol.GetConformer().GetPositions()[next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "F")]
    assert np.linalg.norm(fluorine - chlorine) < 0.6
    assert rmsd < 0.1


def test_core_found_when_the_complete_rings_search_is_slow(bench):
    """p38 2ee vs 2r: rdFMCS with completeRingsOnly times out with an 8-atom core; the trimmed fast search
    finds the 22-atom scaffold (pyridopyrimidinone + difluorophenoxy + NH)."""
    from ligand_prep.poses import _find_core

    docked = {lig.name: lig for lig in read_ligands(bench / "p38" / "ligands.sdf")}
    mol = _named(docked["lig_p38a_2ee"].smiles, "lig_p38a_2ee")
    core = _find_core(Chem.AddHs(mol), docked["lig_p38a_2r"].to_rdkit(), "lig_p38a_2ee", "lig_p38a_2r")
    assert len(core) >= 22
    ring_atoms = {i for i, _ in core if mol.GetAtomWithIdx(i).IsInRing()}
    assert len(ring_atoms) == 16  # the bicycle (10) and the phenyl (6), whole
