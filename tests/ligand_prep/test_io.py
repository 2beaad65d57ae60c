"""Reading ligand series (SDF, CSV, .smi), pose generation from SMILES, and the SDF round trip."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign
from scipy.spatial import cKDTree

from ligand_prep.io import read_ligands, read_reference, write_sdf
from ligand_prep.models import ExperimentalValue
from ligand_prep.poses import protein_heavy_atoms
from mlfep_core import InputError, LigandValidationError


def _tyk2_csv(bench, path, names=None):
    """A CSV of the tyk2 SMILES (stereo kept) built from the benchmark SDF."""
    lines = ["name,smiles"]
    for mol in Chem.SDMolSupplier(str(bench / "tyk2" / "ligands.sdf"), removeHs=False):
        name = mol.GetProp("_Name")
        if names is None or name in names:
            lines.append(f"{name},{Chem.MolToSmiles(Chem.RemoveHs(mol))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _perceived_smiles(ligand) -> str:
    mol = ligand.to_rdkit()
    Chem.AssignStereochemistryFrom3D(mol)
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def test_read_tyk2_sdf(bench):
    ligands = read_ligands(bench / "tyk2" / "ligands.sdf")
    assert len(ligands) == 13
    assert [lig.name for lig in ligands[:3]] == ["lig_ejm_54", "lig_jmc_23", "lig_ejm_47"]
    first = ligands[0]
    assert first.source == "ligands.sdf record 1"
    assert first.n_atoms == 37
    assert first.formal_charge == 0
    assert first.core_rmsd_angstrom is None
    assert first.smiles == "CCNC(=O)Nc1cc(NC(=O)c2c(Cl)cccc2Cl)ccn1"
    # the pose is kept exactly (first atom of the file: -4.7602 -2.7967 -16.4775, an H)
    mol = first.to_rdkit()
    assert mol.GetAtomWithIdx(0).GetSymbol() == "H"
    assert np.allclose(mol.GetConformer().GetPositions()[0], [-4.7602, -2.7967, -16.4775], atol=1e-4)
    # stereo perceived from 3D: jmc_23 has two defined cyclopropane centres
    assert ligands[1].smiles.count("@") == 2


def test_read_freesolv_csv_aligned_series(bench):
    ligands = read_ligands(bench / "freesolv" / "rhfe_benzenes_ligands.csv")
    assert [lig.name for lig in ligands][:3] == ["benzene", "toluene", "phenol"]
    assert len(ligands) == 10
    phenol = ligands[2]
    assert phenol.experimental == ExperimentalValue(dg_kcal_mol=-6.6, dg_err_kcal_mol=0.2, source="dG kcal/mol")
    assert phenol.source == "rhfe_benzenes_ligands.csv row 4"
    assert ligands[0].core_rmsd_angstrom is None  # the free-embedded anchor
    ring = Chem.MolFromSmarts("c1ccccc1")
    benzene = ligands[0].to_rdkit()
    ring_ref = benzene.GetConformer().GetPositions()[list(benzene.GetSubstructMatch(ring))]
    for lig in ligands[1:]:
        mol = lig.to_rdkit()
        assert mol.GetNumAtoms() == Chem.AddHs(Chem.MolFromSmiles(lig.smiles)).GetNumAtoms()
        assert lig.core_rmsd_angstrom < 0.1
        ring_pos = mol.GetConformer().GetPositions()[list(mol.GetSubstructMatch(ring))]
        # every ring sits on benzene's ring (some atom order of it)
        dist = np.linalg.norm(ring_pos[:, None, :] - ring_ref[None, :, :], axis=-1).min(axis=1)
        assert dist.max() < 0.2, lig.name


def test_tyk2_smiles_posed_on_reference(bench, tmp_path):
    """Acceptance: 13 tyk2 SMILES placed on lig_ejm_31 in the protein, core RMSD < 0.5 Å, SDF round trip."""
    csv_path = _tyk2_csv(bench, tmp_path / "tyk2.csv")
    reference = bench / "tyk2" / "ligands.sdf"
    ref = next(lig for lig in read_ligands(reference) if lig.name == "lig_ejm_31")
    ref_path = write_sdf([ref], tmp_path / "ref.sdf")
    ligands = read_ligands(csv_path, reference=ref_path, protein=bench / "tyk2" / "protein.pdb")
    assert len(ligands) == 13
    docked = {lig.name: lig for lig in read_ligands(reference)}
    tree = cKDTree(protein_heavy_atoms(bench / "tyk2" / "protein.pdb"))
    for lig in ligands:
        assert lig.core_rmsd_angstrom < 0.5, lig.name
        assert lig.source.startswith("tyk2.csv row ")
        assert _perceived_smiles(lig) == lig.smiles == docked[lig.name].smiles, lig.name
        mol = lig.to_rdkit()
        heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
        closest = tree.query(mol.GetConformer().GetPositions()[heavy])[0].min()
        assert closest > 2.0, f"{lig.name} clashes with the protein ({closest:.2f} Å)"
        # close to the docked pose of the benchmark (in place, symmetry-aware heavy-atom RMSD)
        rmsd = rdMolAlign.CalcRMS(Chem.RemoveHs(mol), Chem.RemoveHs(docked[lig.name].to_rdkit()))
        assert rmsd < (0.2 if lig.name == "lig_ejm_31" else 1.0), lig.name
    out = write_sdf(ligands, tmp_path / "prepared.sdf")
    again = read_ligands(out)
    assert [lig.name for lig in again] == [lig.name for lig in ligands]
    for before, after in zip(ligands, again, strict=True):
        assert after.smiles == before.smiles
        assert after.core_rmsd_angstrom == pytest.approx(before.core_rmsd_angstrom, abs=1e-4)
        assert np.allclose(
            after.to_rdkit().GetConformer().GetPositions(), before.to_rdkit().GetConformer().GetPositions()
        )


def test_write_sdf_properties_round_trip(bench, tmp_path):
    ligands = read_ligands(bench / "freesolv" / "rhfe_benzenes_ligands.csv")[:3]
    path = write_sdf(ligands, tmp_path / "out.sdf", properties={"toluene": {"note": "hello"}})
    supplier = Chem.SDMolSupplier(str(path), removeHs=False)
    mols = list(supplier)
    assert [m.GetProp("_Name") for m in mols] == ["benzene", "toluene", "phenol"]
    assert mols[1].GetProp("note") == "hello"
    assert mols[1].GetProp("mlfep_smiles") == "Cc1ccccc1"
    assert mols[2].GetProp("mlfep_formal_charge") == "0"
    assert float(mols[2].GetProp("mlfep_expt_dg_kcal_mol")) == pytest.approx(-6.6)
    again = read_ligands(path)
    assert again[2].experimental.dg_kcal_mol == pytest.approx(-6.6)
    assert again[2].experimental.dg_err_kcal_mol == pytest.approx(0.2)
    assert again[0].source == "out.sdf record 1"
    with pytest.raises(InputError, match="unknown ligand"):
        write_sdf(ligands, tmp_path / "bad.sdf", properties={"nobody": {"a": "b"}})


def test_read_reference_first_record(bench):
    ref = read_reference(bench / "tyk2" / "ligands.sdf")
    assert ref.name == "lig_ejm_54"
    with pytest.raises(InputError, match="must be an SDF"):
        read_reference(bench / "tyk2" / "experimental.csv")


def _embedded(smiles, name, seed=7):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    mol.SetProp("_Name", name)
    return mol


def test_name_property_and_missing_name(tmp_path):
    mol = _embedded("CCO", "")
    mol.SetProp("ID", "ethanol-7")
    path = tmp_path / "named.sdf"
    path.write_text(Chem.MolToMolBlock(mol) + "> <ID>\nethanol-7\n\n$$$$\n")
    with pytest.raises(LigandValidationError, match=r"named\.sdf record 1: no name"):
        read_ligands(path)
    assert read_ligands(path, name_property="ID")[0].name == "ethanol-7"
    with pytest.raises(LigandValidationError, match="no SD property 'CODE'"):
        read_ligands(path, name_property="CODE")


def test_protonate_adds_hydrogens(tmp_path):
    mol = Chem.RemoveHs(_embedded("CC(=O)Nc1ccccc1", "acetanilide"))
    path = tmp_path / "noh.sdf"
    path.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    with pytest.raises(LigandValidationError, match=r"acetanilide.*--protonate"):
        read_ligands(path)
    (lig,) = read_ligands(path, protonate=True)
    assert lig.n_atoms == 19
    assert lig.to_rdkit().GetConformer().Is3D()


def test_smi_file(tmp_path):
    path = tmp_path / "series.smi"
    path.write_text("c1ccccc1 benzene\nCc1ccccc1 toluene\nOc1ccccc1\n")
    ligands = read_ligands(path)
    assert [lig.name for lig in ligands] == ["benzene", "toluene", "series_3"]
    assert ligands[2].source == "series.smi line 3"
    assert ligands[1].core_rmsd_angstrom < 0.1


def test_csv_header_case_and_experimental_columns(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("Name,SMILES,Ki_nM\nbenzene,c1ccccc1,2.5\ntoluene,Cc1ccccc1,\n")
    ligands = read_ligands(path)
    assert ligands[0].experimental.dg_kcal_mol == pytest.approx(-11.735, abs=0.002)
    assert ligands[1].experimental is None


def test_protein_without_reference_for_smiles(tmp_path, bench):
    path = tmp_path / "s.csv"
    path.write_text("name,smiles\nbenzene,c1ccccc1\n")
    with pytest.raises(InputError, match="--reference"):
        read_ligands(path, protein=bench / "tyk2" / "protein.pdb")


def test_missing_columns(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,smiles\nbenzene,c1ccccc1\n")
    with pytest.raises(InputError, match=r"missing column.*'name'"):
        read_ligands(path)


def test_csv_row_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("name,smiles\nbenzene,c1ccccc1\n\nbad_one,C1CC\n")
    with pytest.raises(LigandValidationError, match=r"gaps\.csv row 4 \(bad_one\)"):
        read_ligands(path)


def test_names_that_would_leave_their_folder_are_refused_with_every_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,smiles\n../../evil,c1ccccc1\ntoluene,Cc1ccccc1\n.hidden,CCO\nbenzoic acid,OC(=O)c1ccccc1\n")
    with pytest.raises(LigandValidationError) as info:
        read_ligands(path)
    message = str(info.value)
    for row, name in ((2, "../../evil"), (4, ".hidden"), (5, "benzoic acid")):
        assert f"t.csv row {row}: '{name}' is not a valid name" in message
    assert "toluene" not in message and "names become file names" in message


def test_the_ligand_model_refuses_a_path_as_name():
    from pydantic import ValidationError

    from ligand_prep.models import Ligand

    with pytest.raises(ValidationError, match="ligand name 'a/b' is not a valid name"):
        Ligand(name="a/b", molblock="", smiles="C", formal_charge=0)


def test_fep_plan_writes_no_picture_outside_its_folder(tmp_path, capsys):
    from fep.cli import main

    path = tmp_path / "t.csv"
    path.write_text("name,smiles\n../../evil,c1ccccc1\ntoluene,Cc1ccccc1\n")
    images = tmp_path / "a" / "b" / "imgs"
    code = main(["plan", str(path), "--mode", "hydration", "-o", str(tmp_path / "n.json"), "--images", str(images)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "row 2: '../../evil' is not a valid name" in err
    assert list(tmp_path.rglob("*.png")) == [] and not (tmp_path / "n.json").exists()


def test_ligands_far_larger_than_the_series_are_flagged(caplog):
    from rdkit import Chem

    from ligand_prep.io import _Record, _warn_about_sizes

    def record(name, smiles):
        return _Record(name=name, source=f"s.csv row {name}", mol=Chem.MolFromSmiles(smiles), has_pose=False,
                       experimental=None)  # fmt: skip

    peptide = "N" + "CC(=O)N" * 25 + "CC(=O)O"  # a 26-residue glycine chain: 105 heavy atoms
    series = [record("benzene", "c1ccccc1"), record("toluene", "Cc1ccccc1"), record("phenol", "Oc1ccccc1")]
    with caplog.at_level("WARNING", logger="ligand_prep.io"):
        _warn_about_sizes([*series, record("tetracosylbenzene", "C" * 24 + "c1ccccc1"), record("pep", peptide)])
    messages = [r.getMessage() for r in caplog.records]
    assert any("pep" in m and "105 heavy atoms, large for a small-molecule FEP ligand" in m for m in messages)
    assert any(
        "tetracosylbenzene" in m and "30 heavy atoms, far more than the series' median of 7" in m for m in messages
    )
    assert not any(m.startswith(("ligand benzene ", "ligand toluene ", "ligand phenol ")) for m in messages)
