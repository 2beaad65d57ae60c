"""Validation checks on molecules and series, each failing with one line that names the ligand."""

from __future__ import annotations

import pytest
from rdkit import Chem

from ligand_prep.io import read_ligands
from ligand_prep.validate import (
    check_3d,
    check_hydrogens,
    check_molecule,
    check_stereo_defined,
    check_unique_names,
    series_warnings,
    validate_ligands,
)
from mlfep_core import LigandValidationError


@pytest.mark.parametrize(
    ("smiles", "needle"),
    [
        ("OB(O)c1ccccc1", "unsupported element B"),
        ("C[Zn]C", "unsupported element Zn"),
        ("[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1", "unsupported element Fe"),
        ("C[CH2]", "unpaired"),
        ("CCN.Cl", "a salt: the counter-ion(s) Cl are not part of the ligand"),
    ],
)
def test_check_molecule_refuses(smiles, needle):
    mol = Chem.MolFromSmiles(smiles)
    with pytest.raises(LigandValidationError) as info:
        check_molecule(mol, "ligand bad_1 (x.csv row 2)")
    message = str(info.value)
    assert needle in message
    assert "bad_1" in message
    assert "\n" not in message


@pytest.mark.parametrize("smiles", ["c1ccccc1Cl", "CC(=O)[O-]", "C[NH3+]", "FC(F)(F)S(=O)(=O)N", "ICCBr", "OP(=O)(O)O"])
def test_check_molecule_accepts_sage_elements(smiles):
    check_molecule(Chem.MolFromSmiles(smiles), "ligand ok")


@pytest.mark.parametrize(
    ("smiles", "needle"),
    [("CC(F)Cl", "stereocentre"), ("CC1CCC(C)CC1", "stereocentre at atom 2"), ("CC=CC", "double bond")],
)
def test_undefined_stereo(smiles, needle):
    with pytest.raises(LigandValidationError, match=needle):
        check_stereo_defined(Chem.MolFromSmiles(smiles), "ligand s")


@pytest.mark.parametrize("smiles", ["C[C@H](F)Cl", "C/C=C/C", "CC(C)Cl", "C1CCCCC1", "c1ccccc1C=C"])
def test_defined_or_absent_stereo_passes(smiles):
    check_stereo_defined(Chem.MolFromSmiles(smiles), "ligand s")


def test_check_3d_refuses_2d():
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    from rdkit.Chem import AllChem

    AllChem.Compute2DCoords(mol)
    with pytest.raises(LigandValidationError, match="3D coordinates"):
        check_3d(mol, "ligand flat")
    AllChem.EmbedMolecule(mol, randomSeed=1)
    check_3d(mol, "ligand flat")


def test_check_hydrogens_protonate():
    from rdkit.Chem import AllChem

    full = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(full, randomSeed=1)
    heavy = Chem.RemoveHs(full)
    with pytest.raises(LigandValidationError, match="--protonate"):
        check_hydrogens(heavy, "ligand e")
    fixed = check_hydrogens(heavy, "ligand e", protonate=True)
    assert fixed.GetNumAtoms() == 9
    assert fixed.GetConformer().Is3D()
    charged = Chem.RemoveHs(Chem.AddHs(Chem.MolFromSmiles("CC[NH3+]")))
    with pytest.raises(LigandValidationError, match="charged"):
        check_hydrogens(charged, "ligand c", protonate=True)


def test_unique_names_names_both_places():
    with pytest.raises(LigandValidationError) as info:
        check_unique_names([("a", "s.csv row 2"), ("b", "s.csv row 3"), ("a", "s.csv row 4")])
    assert "s.csv row 2" in str(info.value) and "s.csv row 4" in str(info.value)


def test_validate_ligands_and_charge_groups(bench):
    tyk2 = read_ligands(bench / "tyk2" / "ligands.sdf")
    assert validate_ligands(tyk2) == tyk2
    assert series_warnings(tyk2) == []
    thrombin = read_ligands(bench / "thrombin" / "ligands.sdf")
    warnings = series_warnings(thrombin)
    assert len(warnings) == 1
    assert "charge +2: lig_4" in warnings[0]
    assert "charge +1" in warnings[0]
    assert "charge-changing protocol" in warnings[0]
    with pytest.raises(LigandValidationError, match="duplicate"):
        validate_ligands([tyk2[0], tyk2[0]])
